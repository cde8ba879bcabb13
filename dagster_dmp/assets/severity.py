"""How much a failed quality check weighs: a warning that lets the run finish, unless the
operator names it in DMP_BLOCKING_CHECKS (then an error, and `dmp run` exits non-zero)."""

import dagster as dg

from dagster_dmp import settings


def failed_check_severity(asset_key: dg.AssetKey, check_name: str) -> dg.AssetCheckSeverity:
    """ERROR when DMP_BLOCKING_CHECKS names the check (`name`, `asset:name`) or says `all`."""
    names = settings.blocking_checks()
    blocking = {"all", check_name, f"{asset_key.to_user_string()}:{check_name}"} & names
    return dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
