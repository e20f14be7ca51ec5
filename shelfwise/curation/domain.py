"""What order curation contributes: the Glue job every other domain reads the curated order lines of."""

from __future__ import annotations

from shelfwise.domain import Domain, GlueJob, Retention

CURATED_ORDERS = "curated/order_lines/"

CURATE_ORDERS = GlueJob(
    name="curate_orders",
    description="raw order lines -> curated order lines by order date, rejected rows -> quarantine; only the raw "
    "partitions new or changed since the last run",
    inputs={"input_path": "raw/order_lines/"},
    outputs={"output_path": CURATED_ORDERS, "quarantine_path": "quarantine/curate_orders/"},
    options=("run_date", "full_refresh"),
    run_date_option="run_date",
    state="state/curate_orders/",
)

DOMAIN = Domain(
    name="curation",
    description="Raw order lines to curated ones: schema enforced, duplicates removed, bad rows quarantined",
    glue_jobs=(CURATE_ORDERS,),
    retention=(Retention("quarantine/curate_orders/", 180),),
    prefixes=(CURATED_ORDERS, "quarantine/curate_orders/", "state/curate_orders/"),
)
