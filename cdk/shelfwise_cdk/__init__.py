"""The Shelfwise CDK app: one stack per concern (`stacks/`), constructs for repeated shapes (`constructs/`).

It lives in `cdk/` beside `app.py` and is imported with `cdk/` on `sys.path` (Python puts a script's own folder
there), so its name cannot shadow a library: `cdk/constructs/` would hide the `constructs` package.
"""
