"""A small synthetic labelled corpus for classifier tests: clear topics, seeded, fast to fit."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TOPIC_WORDS = {
    "sanctions": [
        "sanctions",
        "treasury",
        "ofac",
        "designated",
        "blacklist",
        "asset",
        "freeze",
        "embargo",
        "export",
        "controls",
        "restrictive",
        "measures",
        "blocked",
        "entities",
        "sanctioned",
        "oligarch",
        "penalties",
    ],
    "troop-movements": [
        "troops",
        "battalion",
        "brigade",
        "armoured",
        "column",
        "deployment",
        "convoy",
        "artillery",
        "soldiers",
        "mobilisation",
        "tanks",
        "redeployed",
        "garrison",
        "border",
        "exercises",
    ],
    "energy-transit": [
        "pipeline",
        "gas",
        "transit",
        "tanker",
        "lng",
        "compressor",
        "station",
        "flows",
        "strait",
        "refinery",
        "crude",
        "shipments",
        "interconnector",
        "terminal",
        "throughput",
    ],
}
NEUTRAL = [
    "the",
    "a",
    "city",
    "council",
    "weather",
    "football",
    "match",
    "concert",
    "market",
    "prices",
    "schools",
    "holiday",
    "festival",
    "museum",
    "traffic",
    "report",
    "local",
    "officials",
    "said",
    "on",
    "tuesday",
    "week",
    "people",
    "new",
    "year",
    "community",
    "library",
    "park",
    "weekend",
]


def make_corpus(
    *, per_topic: int = 14, negatives: int = 14, both: int = 4, seed: int = 7
) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def sentence(topics: list[str]) -> str:
        words = [rng.choice(NEUTRAL) for _ in range(14)]
        for topic in topics:
            words += [rng.choice(TOPIC_WORDS[topic]) for _ in range(7)]
        rng.shuffle(words)
        return " ".join(words)

    records: list[dict[str, Any]] = []
    plan: list[list[str]] = [[t] for t in TOPIC_WORDS for _ in range(per_topic)]
    plan += [[] for _ in range(negatives)]
    plan += [["sanctions", "energy-transit"] for _ in range(both)]
    for number, labels in enumerate(plan):
        records.append(
            {
                "id": f"doc-{number:03d}",
                "title": sentence(labels)[:60],
                "summary": sentence(labels),
                "content": sentence(labels),
                "labels": labels,
            }
        )
    return records


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
