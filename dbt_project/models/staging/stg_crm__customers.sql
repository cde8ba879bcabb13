with

source as (

    select * from {{ source('crm', 'crm_customers') }}

),

renamed as (

    select
        -- ids (no clear-text e-mail or phone leaves staging)
        {{ dmp.clean_text('customer_id') }} as customer_id,
        {{ dmp.hash_email('email') }} as email_sha256,
        {{ dmp.hash_phone('phone') }} as phone_sha256,
        {{ dmp.clean_text('user_id') }} as user_id,
        {{ dmp.clean_handle('social_handle') }} as social_handle,

        -- attributes
        {{ dmp.clean_lower('gender') }} as gender,
        birth_year,
        {{ dmp.clean_text('city') }} as city,
        upper({{ dmp.clean_text('country') }}) as country,
        {{ dmp.clean_lower('loyalty_tier') }} as loyalty_tier,
        {{ dmp.parse_boolean('consent_email') }} as consent_email,
        {{ dmp.parse_boolean('consent_ads') }} as consent_ads,

        -- timestamps
        cast({{ dmp.parse_timestamp('signup_date') }} as date) as signup_date,
        {{ dmp.clean_text('updated_at') }} as updated_at_raw,
        {{ dmp.parse_timestamp('updated_at') }} as updated_at_parsed,

        -- lineage
        _source_file,
        _line_number

    from source

),

validated as (

    select
        customer_id,
        email_sha256,
        phone_sha256,
        user_id,
        social_handle,
        gender,
        case
            when birth_year between {{ var('min_birth_year') }}
                and extract(year from {{ dbt.current_timestamp() }})
                then birth_year
        end as birth_year,
        coalesce(
            birth_year not between {{ var('min_birth_year') }}
                and extract(year from {{ dbt.current_timestamp() }}),
            false
        ) as has_invalid_birth_year,
        city,
        country,
        loyalty_tier,
        consent_email,
        consent_ads,
        signup_date,
        {{ dmp.bounded_timestamp('updated_at_parsed') }} as updated_at,
        updated_at_raw is not null
            and {{ dmp.bounded_timestamp('updated_at_parsed') }} is null as has_invalid_updated_at,
        _source_file,
        _line_number

    from renamed

)

select * from validated
