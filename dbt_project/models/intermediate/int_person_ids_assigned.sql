{#
    The memory of person ids: for every identifier ever stitched, the person_id it was given,
    so ids survive new data. Incremental (unique_key node_key); each run writes only the
    identifiers that are new or whose person_id or component changed.

    Per component of int_identifiers_clustered:
    - candidates: the person_ids this table already gave to any of its identifiers;
    - the surviving id is the oldest candidate (earliest person_first_assigned_at; a tie,
      e.g. two persons first seen in the same run, goes to the smaller id). A merge of two
      persons thus keeps the older id and the other disappears; a new identifier joining a
      person takes that person's id;
    - a split (an identifier excluded later cuts a person in two): an id stays with the part
      holding most of the identifiers that had it (tie: smaller component_key); the other part
      takes its next candidate or a new id;
    - no candidate: a new id, 'p_' + the first 16 hex digits of md5(component_key), as
      int_identifiers_stitched always did, so a first run or a full refresh gives the same ids
      for the same data. Should that id already exist (a part split off), the run's start time
      is hashed in as well.

    person_first_assigned_at is the start (UTC) of the dbt run that minted the id, the same for
    every identifier of a person; assigned_at is the start of the run that gave this identifier
    its current id. Only the order of runs matters, never the clock's value, and ids never
    depend on it on a first run. Identifiers no longer in the graph (excluded later) keep
    their row: int_identifiers_stitched drops them, and their id is offered back if they return.

    full_refresh=false: this table is state, not a derivation; `dbt build --full-refresh`
    rebuilds everything else around it and every person keeps its id. To forget all ids, drop
    the table.
#}

{{
    config(
        materialized=dmp.incremental_materialization(),
        unique_key='node_key',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{%- set run_at = "cast('" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")" -%}

with

clustered as (

    select * from {{ ref('int_identifiers_clustered') }}

),

previous as (

    {% if is_incremental() %}
    select
        node_key,
        component_key,
        person_id,
        person_first_assigned_at,
        assigned_at
    from {{ this }}
    {% else %}
    select
        cast(null as {{ dbt.type_string() }}) as node_key,
        cast(null as {{ dbt.type_string() }}) as component_key,
        cast(null as {{ dbt.type_string() }}) as person_id,
        cast(null as {{ dbt.type_timestamp() }}) as person_first_assigned_at,
        cast(null as {{ dbt.type_timestamp() }}) as assigned_at
    from clustered
    where 1 = 0
    {% endif %}

),

claims as (

    select
        clustered.component_key,
        previous.person_id,
        min(previous.person_first_assigned_at) as person_first_assigned_at,
        count(*) as claiming_identifiers
    from clustered
    inner join previous
        on clustered.node_key = previous.node_key
    group by 1, 2

),

claims_ranked as (

    select
        *,
        row_number() over (
            partition by person_id
            order by claiming_identifiers desc, component_key
        ) as claim_rank
    from claims

),

survivors_ranked as (

    select
        component_key,
        person_id,
        person_first_assigned_at,
        row_number() over (
            partition by component_key
            order by person_first_assigned_at, person_id
        ) as survivor_rank
    from claims_ranked
    where claim_rank = 1

),

components as (

    select distinct
        component_key,
        {{ dbt.concat(["'p_'", 'substring(' ~ dbt.hash('component_key') ~ ', 1, 16)']) }}
            as minted_person_id
    from clustered

),

known_person_ids as (

    select distinct person_id from previous

),

component_person_ids as (

    select
        components.component_key,
        case
            when survivors_ranked.person_id is not null then survivors_ranked.person_id
            when known_person_ids.person_id is null then components.minted_person_id
            else {{ dbt.concat([
                "'p_'",
                'substring(' ~ dbt.hash(dbt.concat([
                    'components.component_key',
                    "'|'",
                    dbt.cast(run_at, api.Column.translate_type('string')),
                ])) ~ ', 1, 16)',
            ]) }}
        end as person_id,
        coalesce(survivors_ranked.person_first_assigned_at, {{ run_at }})
            as person_first_assigned_at
    from components
    left join survivors_ranked
        on components.component_key = survivors_ranked.component_key
        and survivors_ranked.survivor_rank = 1
    left join known_person_ids
        on components.minted_person_id = known_person_ids.person_id

),

final as (

    select
        clustered.node_key,
        clustered.component_key,
        component_person_ids.person_id,
        component_person_ids.person_first_assigned_at,
        case
            when previous.person_id = component_person_ids.person_id then previous.assigned_at
            else {{ run_at }}
        end as assigned_at
    from clustered
    inner join component_person_ids
        on clustered.component_key = component_person_ids.component_key
    left join previous
        on clustered.node_key = previous.node_key
    {% if is_incremental() %}
    where previous.node_key is null
        or previous.person_id <> component_person_ids.person_id
        or previous.component_key <> clustered.component_key
    {% endif %}

)

select * from final
