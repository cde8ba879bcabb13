{#
    The campaign KPIs, defined once for every grain (campaign x day in campaign_performance,
    campaign x period in campaign_totals). Each is null when its denominator is 0.
        ctr             = clicks / impressions (e-mails sent for e-mail)
        cpc             = cost / clicks
        cpm             = 1000 * cost / impressions
        conversion_rate = converted_clicks / clicks: the share of clicks followed by an order
                          credited to that click (click-through; a click counts once however
                          many orders follow it, so the rate lies in [0, 1])
        cpa             = cost / conversions (all credited conversions)
        roas            = revenue / cost
        roi             = (revenue - cost) / cost
    The measures must be columns (or aggregates) named in the arguments.
#}
{% macro campaign_kpis(
    impressions='impressions',
    clicks='clicks',
    cost='cost',
    converted_clicks='converted_clicks',
    conversions='conversions',
    revenue='revenue'
) -%}
    cast({{ dmp.safe_divide(clicks, impressions) }} as {{ dmp.type_double() }}) as ctr,
    cast({{ dmp.safe_divide(cost, clicks) }} as {{ dmp.type_double() }}) as cpc,
    cast({{ dmp.safe_divide('1000 * ' ~ cost, impressions) }} as {{ dmp.type_double() }}) as cpm,
    cast({{ dmp.safe_divide(converted_clicks, clicks) }} as {{ dmp.type_double() }})
        as conversion_rate,
    cast({{ dmp.safe_divide(cost, conversions) }} as {{ dmp.type_double() }}) as cpa,
    cast({{ dmp.safe_divide(revenue, cost) }} as {{ dmp.type_double() }}) as roas,
    cast({{ dmp.safe_divide(revenue ~ ' - ' ~ cost, cost) }} as {{ dmp.type_double() }}) as roi
{%- endmacro %}
