{#
    Which known person each campaign reached, and when: their non-bot activities that carry
    the campaign (click-throughs, social engagements, tagged orders) and the campaign's touches
    (e-mails sent, impressions) of an identified customer or cookie. A touch whose customer id
    and cookie belong to two persons reached both. The budget model's reach per segment.
#}

with

activities as (

    select * from {{ ref('int_activities_attributed') }}

),

touches as (

    select * from {{ ref('stg_marketing__campaign_touches') }}

),

identifiers as (

    select * from {{ ref('int_identifiers_stitched') }}

),

activity_reach as (

    select
        activity_kind as reach_kind,
        activity_id as reach_id,
        campaign_id,
        person_id,
        activity_at as reached_at
    from activities
    where campaign_id is not null
        and person_id is not null
        and not is_bot

),

touch_identifiers as (

    select
        touch_id,
        campaign_id,
        touched_at,
        'customer_id' as identifier_type,
        customer_id as identifier_value
    from touches
    where touched_at is not null
        and customer_id is not null

    union all

    select
        touch_id,
        campaign_id,
        touched_at,
        'anonymous_id' as identifier_type,
        anonymous_id as identifier_value
    from touches
    where touched_at is not null
        and anonymous_id is not null

),

-- one equi-join on (type, value): a join on "customer id or cookie" cannot hash and ran for
-- over 15 minutes at 10M events
touch_reach as (

    select distinct
        'touch' as reach_kind,
        touch_identifiers.touch_id as reach_id,
        touch_identifiers.campaign_id,
        identifiers.person_id,
        touch_identifiers.touched_at as reached_at
    from touch_identifiers
    inner join identifiers
        on touch_identifiers.identifier_type = identifiers.identifier_type
        and touch_identifiers.identifier_value = identifiers.identifier_value

),

final as (

    select * from activity_reach

    union all

    select * from touch_reach

)

select * from final
