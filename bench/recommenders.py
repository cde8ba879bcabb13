"""Every recommender of ml/recommend.py, the classic baselines included, on a temporal holdout
of two public datasets and of the project's generator: NDCG, precision, recall at 10 and
catalogue coverage per model per dataset.

Run: .venv/bin/python bench/recommenders.py [--datasets online_retail taobao generated]
     [--persons 5000 --days 60 --seed 7] [--real DIR]
Writes bench/results/recommenders.json and bench/results/recommenders.md.

Protocol, the same for every dataset and model:
- train on every interaction before a cut, test on the products each train person interacts
  with (the dataset's target events) after it, minus those the exclusion rule says the person
  already has (`ml.recommend.temporal_split`, rule resolved on the training part: "seen" where
  persons do not come back to products they engaged with, else "purchased");
- each model's lists come from `ml.recommend.recommend(train, products, model=...)` with the
  default config, for the test persons, top 10; `hybrid` is what `recommend()` does with no
  model and no config (it chooses itself, on the training part only);
- metrics are computed here from the lists, not by `evaluate()`: NDCG@10 (ideal DCG over
  min(10, relevant) hits; a relevant product unknown to training still counts as relevant),
  precision@10 (hits / 10), recall@10 (hits / relevant), coverage (distinct recommended
  products / the training catalogue: products in the training events or the products table).

Datasets (README/SOURCE.md beside each file says what the columns are):
- online_retail: UCI Online Retail; invoice lines with a customer, a positive quantity, not a
  cancellation and a product stock code (five digits first) are purchases; a product's
  category is the last word of its most common description; holdout: the last 30 days.
- taobao: Taobao UserBehavior, first 814 users; pv/cart/fav/buy as they are; the item's
  category; holdout: the last 2 days; target: buy, cart or fav (the intent a recommender is
  there to trigger; few buys in two days).
- generated: datagen's landing zone (`--persons` x `--days`, `--seed`), product-bearing web and
  app events (product_view, add_to_cart, purchase; re-sent duplicates dropped by event_id)
  and completed order lines as purchases, each mapped to its true person through the
  generator's truth (`_truth/identities.parquet`; records of no known person, e.g. bots, are
  dropped); products with category and brand; holdout: the last 14 days; target: purchases.
"""

import argparse
import contextlib
import glob
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
RESULTS = Path(__file__).parent / "results"
REAL = REPO.parent / "shared" / "data" / "real"
K = 10
# Acceptance: recommend()'s default within this much NDCG@10 of the best single model ...
TOLERANCE = 0.01
# ... and at least this many times popularity's where popularity is not the best.
POPULARITY_MULTIPLE = 2.0

from machine import describe_machine

from ml.recommend import COMPONENTS, recommend, temporal_split


def online_retail(real: Path) -> dict:
    raw = pd.read_csv(
        real / "online_retail_uci" / "online_retail.csv.gz",
        usecols=["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "CustomerID"],
        dtype={"InvoiceNo": str, "StockCode": str, "CustomerID": "Int64"},
        parse_dates=["InvoiceDate"],
    )
    kept = (
        raw["CustomerID"].notna()
        & (raw["Quantity"] > 0)
        & ~raw["InvoiceNo"].str.startswith("C")
        & raw["StockCode"].str.match(r"^\d{5}")
    )
    lines = raw.loc[kept]
    interactions = pd.DataFrame(
        {
            "person_id": lines["CustomerID"].astype(str),
            "product_id": lines["StockCode"].str.upper(),
            "event_type": "purchase",
            "occurred_at": lines["InvoiceDate"],
        }
    )
    described = raw.dropna(subset=["Description"]).assign(
        product_id=lambda frame: frame["StockCode"].str.upper()
    )
    description = described.groupby("product_id")["Description"].agg(lambda d: d.mode().iloc[0])
    products = pd.DataFrame(
        {
            "product_id": description.index,
            "category": description.str.strip().str.split().str[-1].to_numpy(),
        }
    )
    return {
        "interactions": interactions,
        "products": products,
        "holdout_days": 30.0,
        "test_events": None,
        "target": "purchases",
    }


def taobao(real: Path) -> dict:
    raw = pd.read_csv(
        real / "taobao_user_behavior_subset" / "UserBehavior_first814users.csv.gz",
        header=None,
        names=["user_id", "item_id", "category_id", "behavior_type", "timestamp"],
    )
    interactions = pd.DataFrame(
        {
            "person_id": raw["user_id"].astype(str),
            "product_id": raw["item_id"].astype(str),
            "event_type": raw["behavior_type"],
            "occurred_at": pd.to_datetime(raw["timestamp"], unit="s", utc=True),
        }
    )
    products = pd.DataFrame(
        {"product_id": raw["item_id"].astype(str), "category": raw["category_id"].astype(str)}
    ).drop_duplicates("product_id")
    return {
        "interactions": interactions,
        "products": products,
        "holdout_days": 2.0,
        "test_events": {"buy", "cart", "fav"},
        "target": "buy, cart or fav",
    }


def _times(values: pd.Series) -> pd.Series:
    """The landing zone's time formats (docs/landing.md): ISO 8601 with Z, an offset or
    naive (UTC), or epoch milliseconds; implausible ones (before 2000, after 2099) dropped."""
    text = values.astype("string")
    digits = text.str.fullmatch(r"\d+").fillna(False).to_numpy()
    times = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if digits.any():
        times[digits] = pd.to_datetime(text[digits].astype("int64"), unit="ms", utc=True)
    if (~digits).any():
        times[~digits] = pd.to_datetime(text[~digits], utc=True, format="ISO8601", errors="coerce")
    return times.where((times.dt.year >= 2000) & (times.dt.year < 2099))


def generated(persons: int, days: int, seed: int) -> dict:
    from datagen import generate

    with tempfile.TemporaryDirectory() as folder:
        landing = Path(folder)
        with contextlib.redirect_stdout(sys.stderr):
            generate(persons=persons, days=days, seed=seed, out_dir=landing)
        identities = pd.read_parquet(landing / "_truth" / "identities.parquet")
        owner = {
            (kind, value): person
            for kind, value, person in identities[
                ["identifier_type", "identifier_value", "true_person_id"]
            ].itertuples(index=False)
        }
        records = []
        for channel in ("web_events", "app_events"):
            for path in sorted(glob.glob(str(landing / channel / "*.jsonl.gz"))):
                records.append(_parse_events(path))
        events = pd.concat(records, ignore_index=True).drop_duplicates("event_id")
        events = events.loc[events["product_id"].notna()]
        person = pd.Series(pd.NA, index=events.index, dtype="object")
        for kind in ("user_id", "anonymous_id", "device_id"):
            if kind in events.columns:
                found = events[kind].map(lambda v, kind=kind: owner.get((kind, v)))
                person = person.fillna(found)
        events = events.assign(person_id=person, occurred_at=_times(events["event_time"]))
        orders = pd.concat(
            [
                pd.read_parquet(path)
                for path in sorted(glob.glob(str(landing / "orders/*.parquet")))
            ],
            ignore_index=True,
        )
        orders = orders.loc[
            (orders["status"] == "completed")
            & (orders["quantity"] > 0)
            & (orders["unit_price"] > 0)
        ]
        person = pd.Series(pd.NA, index=orders.index, dtype="object")
        for kind in ("customer_id", "user_id", "email"):
            values = orders[kind].str.strip()
            if kind == "email":
                values = values.str.lower()
            person = person.fillna(values.map(lambda v, kind=kind: owner.get((kind, v))))
        orders = orders.assign(
            person_id=person, event_type="purchase", occurred_at=_times(orders["order_time"])
        )
        columns = ["person_id", "product_id", "event_type", "occurred_at"]
        interactions = pd.concat([events[columns], orders[columns]], ignore_index=True)
        interactions = interactions.dropna().reset_index(drop=True)
        products = pd.read_csv(landing / "products" / "products.csv", dtype=str)
        personas = pd.read_parquet(landing / "_truth" / "personas.parquet")
    return {
        "interactions": interactions,
        "products": products[["product_id", "category", "brand"]],
        "holdout_days": 14.0,
        "test_events": None,
        "target": "purchases",
        "personas": personas.set_index("true_person_id")["persona"],
    }


def persona_oracle(split, personas: pd.Series, persons: list[str]) -> pd.DataFrame:
    """A ceiling reference, not a model: the products most bought before the cut by persons
    of the test person's true persona (the generator draws products by persona taste), minus
    what the person already has. It knows what no recommender can see."""
    train = split.train.assign(persona=split.train["person_id"].map(personas))
    bought = train.loc[train["event_type"] == "purchase"]
    counts = bought.groupby(["persona", "product_id"]).size().rename("count").reset_index()
    counts = counts.sort_values(["persona", "count", "product_id"], ascending=[True, False, True])
    owned = train if split.exclude == "seen" else bought
    owned = owned[["person_id", "product_id"]].drop_duplicates().assign(owned=True)
    rows = []
    for persona, people in pd.Series(persons).groupby(pd.Series(persons).map(personas)):
        ranked = counts.loc[counts["persona"] == persona, ["product_id", "count"]]
        for person in people:
            lists = ranked.assign(person_id=person).merge(owned, how="left")
            lists = lists.loc[lists["owned"].isna()].head(K)
            rows.append(lists.assign(rank=np.arange(1, len(lists) + 1)))
    return pd.concat(rows, ignore_index=True)[["person_id", "rank", "product_id"]]


def _parse_events(path: str) -> pd.DataFrame:
    """Product-bearing events of one JSON-lines file; damaged lines skipped."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("product_id"):
                rows.append(
                    {
                        key: record.get(key)
                        for key in (
                            "event_id",
                            "event_type",
                            "event_time",
                            "product_id",
                            "user_id",
                            "anonymous_id",
                            "device_id",
                        )
                    }
                )
    return pd.DataFrame(rows)


def score(lists: pd.DataFrame, test: pd.DataFrame, catalogue: int) -> dict:
    """NDCG, precision, recall at K over the test persons, and catalogue coverage."""
    relevant = test.groupby("person_id")["product_id"].nunique()
    lists = lists.loc[(lists["rank"] <= K) & lists["person_id"].isin(relevant.index)]
    hits = lists.merge(test.drop_duplicates(), on=["person_id", "product_id"])
    gain = (1.0 / np.log2(hits["rank"] + 1.0)).groupby(hits["person_id"]).sum()
    found = hits.groupby("person_id").size()
    gain, found = (
        gain.reindex(relevant.index, fill_value=0.0),
        found.reindex(relevant.index, fill_value=0),
    )
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, K + 2)))[np.minimum(relevant.to_numpy(), K) - 1]
    return {
        "ndcg": float(np.mean(gain.to_numpy() / ideal)),
        "precision": float(np.mean(found.to_numpy() / K)),
        "recall": float(np.mean(found.to_numpy() / relevant.to_numpy())),
        "coverage": lists["product_id"].nunique() / catalogue,
    }


def run_dataset(name: str, data: dict) -> dict:
    started = time.perf_counter()
    split = temporal_split(data["interactions"], data["holdout_days"], data["test_events"])
    products = data["products"]
    catalogue = len(
        set(split.train["product_id"].astype(str)) | set(products["product_id"].astype(str))
    )
    persons = sorted(split.test["person_id"].unique())
    result = {
        "interactions": len(data["interactions"]),
        "train_persons": int(split.train["person_id"].nunique()),
        "catalogue": catalogue,
        "holdout_days": data["holdout_days"],
        "target": data["target"],
        "cutoff": str(split.cutoff),
        "exclude": split.exclude,
        "test_persons": len(persons),
        "test_pairs": len(split.test),
        "models": {},
    }
    for model in (*COMPONENTS, "hybrid"):
        began = time.perf_counter()
        if model == "hybrid":  # recommend() as a caller uses it: no model, no config
            lists = recommend(split.train, products, persons=persons)
            result["hybrid_choice"] = lists.attrs.get("hybrid_choice")
        else:
            lists = recommend(split.train, products, model=model, persons=persons)
        figures = score(lists, split.test, catalogue)
        figures["seconds"] = round(time.perf_counter() - began, 2)
        result["models"][model] = {key: round(value, 4) for key, value in figures.items()}
        print(
            f"{name:14s} {model:11s} " + "  ".join(f"{k} {v:.4f}" for k, v in figures.items()),
            file=sys.stderr,
            flush=True,
        )
    if "personas" in data:
        figures = score(persona_oracle(split, data["personas"], persons), split.test, catalogue)
        result["persona_oracle"] = {key: round(value, 4) for key, value in figures.items()}
    ndcg = {model: figures["ndcg"] for model, figures in result["models"].items()}
    best = max(COMPONENTS, key=lambda model: ndcg[model])
    result["best_baseline"] = best
    result["default_within_tolerance"] = ndcg["hybrid"] >= ndcg[best] - TOLERANCE
    result["default_over_popularity"] = (
        None if ndcg["popularity"] == 0 else round(ndcg["hybrid"] / ndcg["popularity"], 2)
    )
    result["default_beats_popularity_enough"] = (
        best == "popularity" or ndcg["hybrid"] >= POPULARITY_MULTIPLE * ndcg["popularity"]
    )
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def _verdict(data: dict) -> str:
    ok = data["default_within_tolerance"] and data["default_beats_popularity_enough"]
    return "meets" if ok else "**misses**"


def _oracle(oracle: float | None, popularity: float) -> str:
    if oracle is None:
        return ""
    return f"{oracle:.4f}" + (f" ({oracle / popularity:.2f}x)" if popularity > 0 else "")


def _summary_row(name: str, data: dict) -> str:
    models, best = data["models"], data["best_baseline"]
    oracle = data.get("persona_oracle", {}).get("ndcg")
    return (
        f"| {name} | {best} {models[best]['ndcg']:.4f} | {models['popularity']['ndcg']:.4f} | "
        f"{models['hybrid']['ndcg']:.4f} | {models['hybrid']['ndcg'] - models[best]['ndcg']:+.4f} | "
        f"{data['default_over_popularity']}x | "
        f"{_oracle(oracle, models['popularity']['ndcg'])} | {_verdict(data)} |"
    )


def markdown(report: dict) -> str:
    lines = [
        "# Recommenders on a temporal holdout",
        "",
        (
            f"Run: `{report['command']}` on {report['machine']['cores']} cores "
            f"({report['machine']['cpu']}), {report['date']}."
        ),
        "",
        (
            "Train on everything before the cut; test on the products each train person "
            "interacts with after it (the dataset's target events), minus what the exclusion "
            "rule says they already have. Every model from `ml.recommend.recommend` with the "
            "default config, top 10; **recommend() default** = `recommend()` with no model and "
            "no config (the hybrid, which chooses itself on the training part). See the "
            "docstring of bench/recommenders.py for the datasets and metrics."
        ),
        "",
        (
            f"Target: the default within {TOLERANCE} NDCG@10 of the best single model, and at "
            f"least {POPULARITY_MULTIPLE:g}x popularity where popularity is not the best."
        ),
        "",
        (
            "| dataset | best single model | popularity | recommend() default | default - best "
            "| default / popularity | persona oracle | target |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [_summary_row(name, data) for name, data in report["datasets"].items()]
    lines += [
        "",
        "## Every model on every dataset",
        "",
        "| dataset | model | NDCG@10 | precision@10 | recall@10 | coverage | seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, data in report["datasets"].items():
        for model, figures in data["models"].items():
            label = "**recommend() default**" if model == "hybrid" else model
            lines.append(
                f"| {name} | {label} | {figures['ndcg']:.4f} | {figures['precision']:.4f} | "
                f"{figures['recall']:.4f} | {figures['coverage']:.4f} | {figures['seconds']:.1f} |"
            )
    lines += [
        "",
        (
            "Seconds: fit and top-10 for the test persons, the default's including its choice "
            "(every model fitted and validated under three time decays)."
        ),
        "",
        "## Per dataset",
        "",
    ]
    for name, data in report["datasets"].items():
        choice = data.get("hybrid_choice") or {}
        lines += [
            (
                f"- **{name}**: {data['interactions']:,} interactions, "
                f"{data['train_persons']:,} train persons, catalogue {data['catalogue']:,}; "
                f"holdout the last {data['holdout_days']:g} days (cut {data['cutoff'][:16]}), "
                f"target {data['target']}, exclusion rule `{data['exclude']}`: "
                f"{data['test_persons']:,} test persons, {data['test_pairs']:,} pairs. "
                f"The default chose **{choice.get('chosen')}**: {choice.get('reason')}."
            ),
        ]
    if report.get("generated_seeds"):
        lines += [
            "",
            "## The generator under other seeds",
            "",
            (
                "Same scenario and protocol, other generator seeds. The persona oracle (not a model: "
                "it ranks by what persons of the test person's true persona bought) shows how much "
                "the generator's tastes let any recommender gain over popularity: where even it "
                "stays under 2x popularity, so must every model."
            ),
            "",
            (
                "| dataset | best single model | popularity | recommend() default | default - best "
                "| default / popularity | persona oracle | target |"
            ),
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        lines += [_summary_row(name, data) for name, data in report["generated_seeds"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["online_retail", "taobao", "generated"])
    parser.add_argument("--persons", type=int, default=5000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--extra-seeds",
        type=int,
        nargs="*",
        default=[1, 3, 11],
        help="generator seeds summarised besides --seed (with 'generated')",
    )
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    loaders = {
        "online_retail": lambda: online_retail(args.real),
        "taobao": lambda: taobao(args.real),
        "generated": lambda: generated(args.persons, args.days, args.seed),
    }
    report = {
        "command": "python bench/recommenders.py " + " ".join(sys.argv[1:]),
        "machine": describe_machine(("numpy", "scipy", "scikit-learn", "implicit")),
        "date": time.strftime("%Y-%m-%d"),
        "k": K,
        "datasets": {},
    }
    for name in args.datasets:
        report["datasets"][name] = run_dataset(name, loaders[name]())
    if "generated" in args.datasets and args.extra_seeds:
        report["generated_seeds"] = {
            f"generated, seed {seed}": run_dataset(
                f"seed {seed}", generated(args.persons, args.days, seed)
            )
            for seed in args.extra_seeds
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "recommenders.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.out / "recommenders.md").write_text(markdown(report) + "\n")
    print(markdown(report))


if __name__ == "__main__":
    main()
