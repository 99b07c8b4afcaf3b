"""A deterministic demo data set with realistic dirt, written into the landing zone.

Customers (CSV), products (JSON Lines) and two days of orders (CSV, one gzipped). The same seed
always gives the same bytes, so the demo's summary is the same on every machine. The dirt is
deliberate and counted in DEMO_DIRT: exact duplicates, customers registered twice (a typo or
swapped names, another email, a new id), nulls, invalid emails, out-of-range and non-numeric
amounts, and one malformed CSV line.
"""

from __future__ import annotations

import csv
import datetime
import gzip
import io
import json
import random
from pathlib import Path

SEED = 20261122
FIRST = ["Anna", "Ben", "Carla", "David", "Eva", "Felix", "Greta", "Hugo", "Ines", "Jonas", "Klara", "Liam", "Mia", "Noah"]
LAST = ["Schmidt", "Meyer", "Garcia", "Rossi", "Dubois", "Novak", "Jensen", "Silva", "Kowalski", "Smith", "Berg", "Costa"]
COUNTRIES = ["DE", "FR", "ES", "IT", "NL", "PL", "SE", "PT"]
CATEGORIES = ["Books", "Garden", "Kitchen", "Toys", "Sports"]

DEMO_DIRT = {
    "customers": {"exact_duplicates": 12, "null_emails": 15, "invalid_emails": 10, "fuzzy_duplicates": 8},
    "products": {"non_numeric_prices": 2},
    "orders": {"exact_duplicates": 20, "negative_amounts": 15, "huge_amounts": 5, "non_numeric_amounts": 8, "malformed_lines": 1},
}


def _customers(rng: random.Random, count: int) -> list[dict]:
    rows = []
    for customer_id in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        rows.append(
            {
                "customer_id": customer_id,
                "first_name": f"  {first}" if customer_id % 17 == 0 else first,
                "last_name": last.upper() if customer_id % 23 == 0 else last,
                "email": f"{first}.{last}{customer_id}@example.com".upper()
                if customer_id % 19 == 0
                else f"{first}.{last}{customer_id}@example.com".lower(),
                "phone": f"+49 30 {rng.randint(1000000, 9999999)}",
                "country": f" {rng.choice(COUNTRIES).lower()} " if customer_id % 13 == 0 else rng.choice(COUNTRIES),
                "signup_date": (datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randint(0, 600))).isoformat(),
            }
        )
    for row in rng.sample(rows, DEMO_DIRT["customers"]["null_emails"]):
        row["email"] = ""
    candidates = [r for r in rows if r["email"]]
    for row in rng.sample(candidates, DEMO_DIRT["customers"]["invalid_emails"]):
        row["email"] = row["email"].replace("@", " at ")
    rows += [dict(r) for r in rng.sample(rows, DEMO_DIRT["customers"]["exact_duplicates"])]
    registered = [r for r in rows[:count] if "@" in r["email"]]
    for number, original in enumerate(rng.sample(registered, DEMO_DIRT["customers"]["fuzzy_duplicates"]), start=1):
        again = dict(original, customer_id=count + number, email=f"{original['last_name'].strip().lower()}{number}@mail.test")
        first, last = again["first_name"].strip(), again["last_name"]
        if number % 3 == 0:
            again["first_name"], again["last_name"] = last, first  # entered the other way round
        else:
            cut = len(last) // 2
            again["last_name"] = last[:cut] + last[cut + 1 :]  # one letter lost
        rows.append(again)
    return rows


def _products(rng: random.Random, count: int) -> list[dict]:
    rows = [
        {
            "product_id": product_id,
            "name": f"{rng.choice(['Classic', 'Eco', 'Pro', 'Mini'])} {rng.choice(CATEGORIES)} item {product_id}",
            "category": rng.choice(CATEGORIES) if product_id % 7 else f" {rng.choice(CATEGORIES).lower()}",
            "price": round(rng.uniform(2, 250), 2),
        }
        for product_id in range(1, count + 1)
    ]
    for row in rng.sample(rows, DEMO_DIRT["products"]["non_numeric_prices"]):
        row["price"] = "call us"
    return rows


def _orders(rng: random.Random, day: datetime.date, first_id: int, count: int, customers: int, products: int) -> list[dict]:
    rows = []
    for order_id in range(first_id, first_id + count):
        created = datetime.datetime.combine(day, datetime.time()) + datetime.timedelta(seconds=rng.randint(0, 86_399))
        quantity = rng.randint(1, 5)
        rows.append(
            {
                "order_id": order_id,
                "customer_id": rng.randint(1, customers),
                "product_id": rng.randint(1, products),
                "quantity": quantity,
                "amount": f"{quantity * rng.uniform(2, 250):.2f}",
                "currency": "EUR",
                "created_at": created.isoformat(sep=" "),
            }
        )
    return rows


def _dirty_orders(rng: random.Random, rows: list[dict]) -> list[dict]:
    dirt = DEMO_DIRT["orders"]
    picked = rng.sample(rows, dirt["negative_amounts"] + dirt["huge_amounts"] + dirt["non_numeric_amounts"])
    for index, row in enumerate(picked):
        if index < dirt["negative_amounts"]:
            row["amount"] = f"-{row['amount']}"
        elif index < dirt["negative_amounts"] + dirt["huge_amounts"]:
            row["amount"] = "2500000.00"
        else:
            row["amount"] = row["amount"].replace(".", ",") + " EUR"
    return rows + [dict(r) for r in rng.sample(rows, dirt["exact_duplicates"])]


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_demo_data(landing: Path, customers: int = 400, products: int = 40, orders_per_day: int = 2_000) -> dict[str, Path]:
    """Write the demo files under `landing` and return them by name; same seed, same bytes."""
    rng = random.Random(SEED)
    landing.mkdir(parents=True, exist_ok=True)
    (landing / "orders").mkdir(exist_ok=True)
    files = {
        "customers": landing / "customers.csv",
        "products": landing / "products.jsonl",
        "orders_day1": landing / "orders" / "orders_2026-11-20.csv",
        "orders_day2": landing / "orders" / "orders_2026-11-21.csv.gz",
    }
    files["customers"].write_text(_csv_text(_customers(rng, customers)))
    files["products"].write_text("".join(json.dumps(r) + "\n" for r in _products(rng, products)))
    day1 = _dirty_orders(rng, _orders(rng, datetime.date(2026, 11, 20), 1, orders_per_day, customers, products))
    text = _csv_text(day1)
    lines = text.splitlines(keepends=True)
    lines.insert(len(lines) // 2, "99999,12,3,1,19.99,EUR,2026-11-20 12:00:00,unexpected-extra-field\n")
    files["orders_day1"].write_text("".join(lines))
    day2 = _orders(rng, datetime.date(2026, 11, 21), orders_per_day + 1, orders_per_day, customers, products)
    with gzip.GzipFile(files["orders_day2"], "wb", mtime=0) as handle:
        handle.write(_csv_text(day2).encode())
    return files
