{#
    The latest version of every CRM customer: the newest updated_at wins; rows without a valid
    updated_at lose against dated ones; remaining ties go to the later file and line.
#}

with

customers as (

    select * from {{ ref('stg_crm__customers') }}

),

customers_ranked as (

    select
        *,
        row_number() over (
            partition by customer_id
            order by
                case when updated_at is null then 1 else 0 end,
                updated_at desc,
                _source_file desc,
                _line_number desc
        ) as version_rank,
        count(*) over (partition by customer_id) as versions
    from customers
    where customer_id is not null

),

final as (

    select
        -- ids
        customer_id,
        email_sha256,
        phone_sha256,
        user_id,
        social_handle,

        -- attributes
        gender,
        birth_year,
        city,
        country,
        loyalty_tier,
        consent_email,
        consent_ads,
        versions,

        -- timestamps
        signup_date,
        updated_at,

        -- lineage
        _source_file,
        _line_number

    from customers_ranked
    where version_rank = 1

)

select * from final
