"""torch.profiler over a system's training updates: phases, forward time by module, top ops."""

import time

import torch


def _label_modules(model, depth: int = 3):
    """Forward hooks that wrap each submodule (up to ``depth`` dots) in a profiler range."""
    handles = []
    for name, module in model.named_modules():
        if not name or name.count(".") >= depth or isinstance(module, torch.nn.ModuleList):
            continue

        def pre(mod, _inputs, label=f"fwd:{name}"):
            mod.__dict__.setdefault("_bench_ranges", []).append(
                torch.autograd.profiler.record_function(label).__enter__())

        def post(mod, _inputs, _output):
            ranges = mod.__dict__.get("_bench_ranges")
            if ranges:
                ranges.pop().__exit__(None, None, None)
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    return handles


def profile_system(system, batches, steps: int, rows: int) -> dict:
    """torch.profiler over ``steps`` training updates; prints and returns the top ops."""
    from torch.profiler import ProfilerActivity, profile

    cuda = system.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    system.train_steps(batches[:1])  # warm
    handles = _label_modules(system.model)
    try:
        with profile(activities=activities, record_shapes=True) as prof:
            start = time.perf_counter()
            system.train_steps(batches[:steps])
            wall = time.perf_counter() - start
    finally:
        for h in handles:
            h.remove()
    events = prof.key_averages()
    ms = lambda us: us / 1e3  # noqa: E731

    def self_time(e, kind):
        names = ("self_cpu_time_total",) if kind == "cpu" else ("self_device_time_total", "self_cuda_time_total")
        for attr in names:  # torch renamed the CUDA field to "device" in 2.4
            value = getattr(e, attr, None)
            if value is not None:
                return value
        return 0

    def top(kind):
        ranked = sorted((e for e in events if not e.key.startswith(("fwd:", "ProfilerStep"))),
                        key=lambda e: self_time(e, kind), reverse=True)[:rows]
        return [{"op": e.key, "calls": e.count, "self_ms": ms(self_time(e, kind)),
                 "total_ms": ms(e.cpu_time_total)} for e in ranked]

    phases = {e.key: ms(e.cpu_time_total) for e in events
              if e.key in ("forward", "backward", "clip-grads", "optimizer", "multiply-grads")}
    modules = sorted(((e.key[4:], ms(e.cpu_time_total), e.count) for e in events if e.key.startswith("fwd:")),
                     key=lambda m: -m[1])
    result = {"system": system.name, "steps": steps, "wall_ms": wall * 1e3, "phases_ms": phases,
              "forward_by_module_ms": [{"module": m, "total_ms": t, "calls": c} for m, t, c in modules],
              "top_self_cpu": top("cpu")}
    if cuda:
        result["top_self_device"] = top("device")

    print(f"\n### Profile: {system.name}, {steps} training updates, {wall * 1e3:.0f} ms wall "
          f"(profiler overhead included)\n")
    print("phases (ms, inclusive): " + ", ".join(f"{k} {v:.1f}" for k, v in phases.items()))
    print("\nforward time by module (ms, inclusive; children nest inside parents):")
    for m, t, c in modules:
        print(f"  {m:<40s} {t:9.1f}  ({c} calls)")
    for key, title in (("top_self_cpu", "self CPU"), ("top_self_device", "self CUDA")):
        if key not in result:
            continue
        print(f"\ntop {rows} ops by {title} time:\n")
        print("| op | calls | self ms | total ms |\n|---|---:|---:|---:|")
        for r in result[key]:
            print(f"| {r['op']} | {r['calls']} | {r['self_ms']:.1f} | {r['total_ms']:.1f} |")
    return result
