"""The demand forecasting domain: daily demand per store x SKU, probabilistic forecasts, inventory decisions.

The data that flows through it:

- `features/demand/daily/as_of=YYYY-MM-DD/` (Glue job `demand_features`): one row per location x SKU x day of the
  SKU's selling life before `as_of`: `store_id, sku, date, units` (net of returns, never below 0), `censored`
  (a stocked-out day: its sales are not its demand, so training treats it as missing), `promo`, `price_ratio`
  (price paid / base price; null on a day without sales).
- `features/demand/static/as_of=YYYY-MM-DD/`: one row per location x SKU: `store_id, sku, region, format,
  department, category, brand, price_tier, launch_date`.
- Calendar covariates (events and their lead-up days; each store's region's holidays and their eves, from the raw
  `regional_holidays` calendar) are not stored as features: they are known in advance, so
  `shelfwise.demand.calendar` computes them for any date, history and future alike.
"""
