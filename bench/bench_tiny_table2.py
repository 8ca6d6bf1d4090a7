"""Table 2 cheaply: `python bench/bench_tiny_table2.py RUN_DIR [LIMIT]` after `solar-ray pipeline
experiments/tiny/pipeline.yaml --output RUN_DIR --only world/data_pretrain/base/dus` (one stage each).

On the pipeline's own base and DUS models: continued pretraining in process (cpt.yaml's settings:
40 steps, lr 1e-3, 16 x 128-token blocks, 5% warmup, cosine), then H6 (limit 40) with per-item scores, and the
findings judged with paired statistics."""
import json, math, random, sys, tempfile, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from solar_ray.evaluate.runner import make_lm, run_tasks, task_manager
from solar_ray.evaluate.scores import summarize
from solar_ray.evaluate.suites import H6
from solar_ray.evaluate.tasks import write_task_dir
from solar_ray.evaluate.chance import chance_scores
from solar_ray.report.findings import Finding, PairedScores, judge

root = Path(sys.argv[1]); limit = int(sys.argv[2]) if len(sys.argv) > 2 else 40
torch.set_num_threads(1)
t0 = time.time()
if not (root / "cpt_inproc").exists():
    tok = AutoTokenizer.from_pretrained(root / "dus")
    model = AutoModelForCausalLM.from_pretrained(root / "dus")
    texts = [json.loads(l)["text"] for l in (root / "world/data/pretrain/train.jsonl").read_text().splitlines()]
    random.Random(1).shuffle(texts)
    ids = []
    for t in texts:
        ids += tok(t).input_ids + [tok.eos_token_id]
    blocks = [ids[i:i + 128] for i in range(0, len(ids) - 128, 128)]
    steps = 40
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    warm = 2
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))))
    rng = random.Random(1)
    model.train()
    for step in range(steps):
        b = torch.tensor(rng.sample(blocks, 16))
        loss = model(input_ids=b, labels=b).loss
        loss.backward(); torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        print("cpt", step, round(loss.item(), 3), round(time.time() - t0), flush=True)
    model.save_pretrained(root / "cpt_inproc"); tok.save_pretrained(root / "cpt_inproc")
data = root / "world/data/benchmarks"
task_dir = tempfile.mkdtemp()
names = write_task_dir(data, list(H6), task_dir, 32)
manager = task_manager(task_dir)
summaries = {}
for name, path in (("base", root / "base"), ("dus", root / "dus"), ("dus_cpt", root / "cpt_inproc")):
    out = run_tasks(make_lm(str(path)), names, manager, limit)
    summaries[name] = summarize(out["results"], list(H6), out["items"])
    print(name, {k: round(100 * v["value"], 1) for k, v in summaries[name].items()}, round(time.time() - t0), flush=True)
(root / "table2_summary.json").write_text(json.dumps(summaries))
chance = chance_scores(data, limit)
print("chance", {k: round(v, 1) for k, v in chance.items()})
evidence = PairedScores(summaries)
for metric in ("h6", "arc", "hellaswag", "mmlu", "truthfulqa", "winogrande", "gsm8k"):
    for f in (Finding(claim=f"drop and recovery ({metric})", kind="drops_then_recovers", metric=metric, models=["base", "dus", "dus_cpt"]),
              Finding(claim=f"DUS+CPT beats base ({metric})", kind="improves", metric=metric, baseline=["base"], treatment="dus_cpt")):
        v = judge(f, evidence, chance.get(metric))
        print(v["verdict"], "|", v["evidence"], flush=True)
