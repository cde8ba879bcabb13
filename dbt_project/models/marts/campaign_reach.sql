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

touch_reach as (

    select
        'touch' as reach_kind,
        touches.touch_id as reach_id,
        touches.campaign_id,
        identifiers.person_id,
        touches.touched_at as reached_at
    from touches
    inner join identifiers
        on (identifiers.identifier_type = 'customer_id'
            and touches.customer_id = identifiers.identifier_value)
        or (identifiers.identifier_type = 'anonymous_id'
            and touches.anonymous_id = identifiers.identifier_value)
    where touches.touched_at is not null

),

final as (

    select * from activity_reach

    union all

    select * from touch_reach

)

select * from final
