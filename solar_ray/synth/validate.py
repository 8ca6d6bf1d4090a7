"""Which seed rows are usable and which rephrasings are kept; everything else gets a reason.

Seed rows (MATH schema: problem, solution with `\\boxed{}`, level, type) are rejected before generation with:
    missing_field       problem or solution absent, not a string, or empty
    no_seed_answer      the solution has no extractable final answer, so no rephrasing could be checked
    seed_contaminated   the problem + solution share an n-gram with a benchmark evaluation set
Generated samples are checked in this order (the first failing rule names the reason):
    1. generation_failed  the engine raised for this row (the error text is the detail)
    2. unparseable        the completion lacks the `Rephrased problem: ... Rephrased solution: ...` layout
    3. no_answer          the rephrased solution has no extractable final answer
    4. answer_mismatch    its answer differs from the original's after normalisation (detail: both answers)
    5. copy_of_original   the rephrased problem or solution is the original's text (nothing was rephrased)
    6. contaminated       problem + solution share an n-gram with a benchmark evaluation set
    7. duplicate          the same rephrased problem (case, spacing and punctuation ignored) was kept already;
                          the earliest (seed_id, sample) wins, so the choice does not depend on scheduling
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from solar_ray.errors import DataError
from solar_ray.synth.answers import answers_match, extract_answer, normalize_answer
from solar_ray.synth.prompts import parse_rephrasing

REJECTED_COLUMNS = [
    "seed_id", "sample", "problem", "solution", "rephrased_problem", "rephrased_solution", "completion", "reason",
    "detail",
]


def _text_key(text: str) -> str:
    """Case, spacing and punctuation do not make two problems different."""
    return " ".join(re.findall(r"\w+", text.lower()))


# ---------------------------------------------------------------------------------------------- seed rows


def read_seed_file(path: str | Path) -> tuple[Path, list[dict]]:
    """Rows of a MATH-schema file: `.jsonl` or `.parquet`, or a directory holding train.jsonl / train.parquet."""
    path = Path(path)
    if path.is_dir():
        found = [path / name for name in ("train.jsonl", "train.parquet") if (path / name).is_file()]
        if not found:
            raise DataError(f"{path}: no train.jsonl or train.parquet in the seed directory (MATH schema: problem, "
                            "solution, level, type)")
        path = found[0]
    if not path.is_file():
        raise DataError(f"{path}: seed file not found (expected MATH-schema .jsonl or .parquet)")
    if path.suffix == ".parquet":
        return path, pd.read_parquet(path).to_dict("records")
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{line_no}: invalid JSON ({exc.msg}); expected one MATH row per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{line_no}: expected a JSON object with problem and solution")
        rows.append(row)
    return path, rows


def select_seeds(path: Path, rows: list[dict], index=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(usable seeds with seed_id/problem/solution/answer/level/type, rejected seed rows with reasons).

    seed_id is the row's position in the file, so it is stable across reruns. Raises DataError when no row is
    usable, naming the file and the most common reason.
    """
    seeds, rejected = [], []
    for seed_id, row in enumerate(rows):
        problem, solution = row.get("problem"), row.get("solution")
        base = {"seed_id": seed_id, "sample": -1, "problem": problem if isinstance(problem, str) else None,
                "solution": solution if isinstance(solution, str) else None}
        bad = [f for f, v in (("problem", problem), ("solution", solution)) if not isinstance(v, str) or not v.strip()]
        if bad:
            rejected.append({**base, "reason": "missing_field", "detail": f"row {seed_id}: '{bad[0]}' is missing "
                             "or empty"})
            continue
        answer = extract_answer(solution)
        if normalize_answer(answer) in (None, ""):
            rejected.append({**base, "reason": "no_seed_answer", "detail": f"row {seed_id}: no \\boxed{{}}, '####' or "
                             "'The answer is' in the solution"})
            continue
        seeds.append({**base, "answer": answer, "level": str(row.get("level", "")), "type": str(row.get("type", ""))})
    seeds_df = pd.DataFrame(seeds, columns=["seed_id", "sample", "problem", "solution", "answer", "level", "type"])
    if index is not None and len(seeds_df):
        hits = index.match_batch((seeds_df.problem + " " + seeds_df.solution).tolist())
        dirty = [hit is not None for hit in hits]
        for (_, seed), hit in zip(seeds_df[dirty].iterrows(), [h for h in hits if h], strict=True):
            rejected.append({**seed[["seed_id", "sample", "problem", "solution"]].to_dict(),
                             "reason": "seed_contaminated", "detail": f"{hit[0]}: '{hit[1]}'"})
        seeds_df = seeds_df[[not d for d in dirty]].reset_index(drop=True)
    rejected_df = _rejected_frame(rejected)
    if seeds_df.empty:
        common = rejected_df.reason.value_counts().idxmax() if len(rejected_df) else "empty file"
        raise DataError(f"{path}: no usable seed rows ({len(rows)} rows, most rejected as {common}); each row "
                        "needs a problem and a solution whose final answer is in \\boxed{}")
    return seeds_df.drop(columns="sample"), rejected_df


# ----------------------------------------------------------------------------------------------- samples


def check_sample(seed: dict, completion: str | None, error: str | None, prompt_format: str = "completion") -> dict:
    """Rules 1-5 for one sample: a dict with rephrased_problem/rephrased_solution and reason/detail (None = ok)."""
    out = {"rephrased_problem": None, "rephrased_solution": None, "reason": None, "detail": None}
    if isinstance(error, str) and error:  # pandas may hand over NaN for "no error"
        return {**out, "reason": "generation_failed", "detail": error}
    parsed = parse_rephrasing(completion if isinstance(completion, str) else "", prompt_format)
    if parsed is None:
        return {**out, "reason": "unparseable", "detail": "no 'Rephrased problem: ... Rephrased solution: ...'"}
    out["rephrased_problem"], out["rephrased_solution"] = parsed
    answer = extract_answer(parsed[1])
    if answer is None:
        return {**out, "reason": "no_answer", "detail": "no final answer in the rephrased solution"}
    if not answers_match(seed["answer"], answer):
        return {**out, "reason": "answer_mismatch",
                "detail": f"expected {normalize_answer(seed['answer'])!r}, got {normalize_answer(answer)!r}"}
    if _text_key(parsed[0]) == _text_key(seed["problem"]) or _text_key(parsed[1]) == _text_key(seed["solution"]):
        return {**out, "reason": "copy_of_original", "detail": "the rephrasing repeats the original text"}
    return out


def validate_samples(
    generations: pd.DataFrame, seeds: pd.DataFrame, index=None, prompt_format: str = "completion"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept, rejected) samples. `generations`: seed_id, sample, completion, error; `seeds` from select_seeds.

    kept: seed_id, sample, problem, solution, answer, level, type, rephrased_problem, rephrased_solution.
    """
    merged = generations.merge(seeds, on="seed_id", how="inner").sort_values(["seed_id", "sample"])
    checked = [check_sample(row, row["completion"], row["error"], prompt_format)
               for row in merged.to_dict("records")]
    checked = pd.DataFrame(checked, columns=["rephrased_problem", "rephrased_solution", "reason", "detail"])
    merged = merged.reset_index(drop=True).assign(**checked)
    ok = merged.reason.isna()
    if index is not None and ok.any():  # 6. contamination, batched through the vectorised index
        candidates = merged[ok]
        hits = index.match_batch((candidates.rephrased_problem + " " + candidates.rephrased_solution).tolist())
        for position, hit in zip(candidates.index, hits, strict=True):
            if hit is not None:
                merged.loc[position, ["reason", "detail"]] = ["contaminated", f"{hit[0]}: '{hit[1]}'"]
    ok = merged.reason.isna()
    keys = merged.rephrased_problem.where(ok).map(lambda t: _text_key(t) if isinstance(t, str) else None)
    first_of_key = ~keys.duplicated() | keys.isna()  # 7. rows are sorted by (seed_id, sample): first wins
    duplicate = ok & ~first_of_key
    merged.loc[duplicate, "reason"] = "duplicate"
    merged.loc[duplicate, "detail"] = "the same rephrased problem was kept from an earlier sample"
    kept = merged[merged.reason.isna()]
    kept = kept[["seed_id", "sample", "problem", "solution", "answer", "level", "type", "rephrased_problem",
                 "rephrased_solution"]].reset_index(drop=True)
    return kept, _rejected_frame(merged[merged.reason.notna()].to_dict("records"))


def _rejected_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=REJECTED_COLUMNS)
    frame["seed_id"] = frame["seed_id"].astype("int64")
    frame["sample"] = frame["sample"].astype("int64")
    return frame
