"""What the models share: the error for data that cannot support a model, numeric feature
matrices and UTC timestamps."""

import pandas as pd


class ModelFitError(ValueError):
    """The data cannot support the model or its evaluation (too few persons, one class, no
    holdout, a fit that does not converge), as opposed to malformed input. Callers may fall
    back (write what they can, say why); any other error is a bug or bad input and surfaces."""


def numeric_matrix(features: pd.DataFrame, advice: str = "") -> pd.DataFrame:
    """The features as floats; a clear error naming every column that is not a number."""
    not_numeric = [
        str(column)
        for column in features.columns
        if not (
            pd.api.types.is_numeric_dtype(features[column])
            or pd.api.types.is_bool_dtype(features[column])
        )
    ]
    if not_numeric:
        raise ValueError(f"features must be numeric{advice}, not: {', '.join(not_numeric)}")
    if features.shape[1] == 0:
        raise ValueError("features have no columns")
    return features.astype(float)


def utc_naive(values: pd.Series, name: str) -> pd.Series:
    """Timestamps in UTC without a zone (naive input is taken as UTC already)."""
    try:
        return pd.to_datetime(values, utc=True).dt.tz_localize(None)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name} holds values that are not timestamps: {error}") from error


def utc_naive_timestamp(value: pd.Timestamp | str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp if stamp.tzinfo is None else stamp.tz_convert("UTC").tz_localize(None)


def bulk_start(times: pd.Series, stray_share: float = 0.01) -> pd.Timestamp:
    """Where the bulk of a history begins: its `stray_share` quantile, so a few stray early
    records (Taobao's export has 35 weeks of them before its nine days) do not stretch the
    span that windows and holdouts are cut from."""
    return times.dropna().quantile(stray_share)


def seeded_sample(frame: pd.DataFrame | pd.Series, size: int, seed: int = 42):
    """A seeded random `size` of the rows in their own order (all of them when there are
    fewer): what a model is fitted on when everyone would take too long for the same fit."""
    if len(frame) <= size:
        return frame
    return frame.loc[frame.sample(size, random_state=seed).index.sort_values()]
