#!/usr/bin/env python3
"""The report of bench/peers.sh: medians of its runs and the goals of issue 11, in Markdown.

  peers_report.py RUNS.jsonl META.json

RUNS.jsonl holds one line per timed run ({round, tool, op, wall_s, user_s, sys_s, rss_kib, ...})
and notes (writes carried out, frozen-window samples, machine limits); META.json the run's facts
(machine, versions, image, knobs). Every figure a goal needs is printed, met or not; a figure
whose runs were skipped is "–".
"""
import json
import statistics
import sys

MiB = 1 << 20


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Runs:
    def __init__(self, lines):
        self.lines = lines

    def of(self, tool, op):
        return [r for r in self.lines if r.get("tool") == tool and r.get("op") == op]

    def median(self, tool, op, field="wall_s"):
        values = [r[field] for r in self.of(tool, op) if r.get(field) is not None]
        return statistics.median(values) if values else None

    def all_walls(self, tool, op):
        return [r["wall_s"] for r in self.of(tool, op)]


def fmt(value, unit="", digits=2):
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


def secs(value):
    return fmt(value, " s")


def mb(value):
    return "–" if value is None else f"{value / 1e6:.0f} MB"


def rss(value_kib):
    return "–" if value_kib is None else f"{value_kib / 1024:.0f} MiB"


def div(a, b):
    return None if a is None or b is None or b == 0 else a / b


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    rank = max(1, min(len(values), int(p / 100 * len(values) + 0.999999)))
    return values[rank - 1]


def main(runs_path, meta_path):
    lines = load(runs_path)
    with open(meta_path) as f:
        meta = json.load(f)
    runs = Runs(lines)
    m = runs.median
    out = []
    p = out.append

    p(f"### {meta['date']} — {meta['nproc']} vCPUs ({meta['cpu']}), {meta['ram']} GiB RAM, "
      f"kernel {meta['kernel']}, QEMU {meta['qemu']} (TCG)")
    p("")
    p(f"stillpoint: build/release of {meta['built']}, tree {meta['commit']}; restic {meta['restic'] or '–'}, "
      f"borg {meta['borg'] or '–'}, virtnbdbackup {meta['vnb'] or '–'}. Load average "
      f"{meta['load_start']} at the start, {meta['load_end']} at the end. Medians of "
      f"{meta['rounds']} interleaved rounds, page cache dropped before every run."
      + (f" Left out: {meta['skip']}." if meta["skip"] else ""))
    p("")
    p(f"Image: {meta['image_gib']} GiB ext4 (debootstrap minbase bookworm root, seeded incompressible "
      f"files and log text), {meta['allocated'] / 1e6:.0f} MB allocated; the changed image has "
      f"{meta['change_bytes'] / MiB:.0f} MiB rewritten in 8 places. Scattered: "
      f"{meta['scatter_bytes'] // 65536} writes of 64 KiB ({meta['scatter_bytes'] / 1e6:.0f} MB, 1 %) "
      f"at random offsets through QEMU's block layer.")
    p("")

    # --- the side-by-side table --------------------------------------------------------------
    def pair(a, b):
        return f"{secs(a)} / {secs(b)}" if a is not None or b is not None else "–"

    def tool_rss(tool, ops):
        values = [m(tool, op, "rss_kib") for op in ops]
        values = [v for v in values if v is not None]
        return rss(max(values)) if values else "–"

    sp_ops = ["off_full", "off_again", "off_changed", "live_full", "live_inc_same",
              "live_inc_changed", "live_inc_scatter", "restore_qcow2", "restore_raw",
              "create_from_snapshot", "verify"]
    p("| operation | qemu-img | restic | borg (fixed 4 MiB) | virtnbdbackup (live) | stillpoint offline / live |")
    p("|---|---:|---:|---:|---:|---:|")
    p(f"| full | {secs(m('qemu-img', 'convert_raw'))} (convert -O raw) | {secs(m('restic', 'full'))} | "
      f"{secs(m('borg', 'full'))} | {secs(m('virtnbdbackup', 'live_full'))} | "
      f"{pair(m('stillpoint', 'off_full'), m('stillpoint', 'live_full'))} |")
    p(f"| same again (offline / live incremental) | – | {secs(m('restic', 'again'))} | "
      f"{secs(m('borg', 'again'))} | {secs(m('virtnbdbackup', 'live_inc_same'))} | "
      f"{pair(m('stillpoint', 'off_again'), m('stillpoint', 'live_inc_same'))} |")
    p(f"| {meta['change_bytes'] / MiB:.0f} MiB changed in 8 places | – | {secs(m('restic', 'changed'))} | "
      f"{secs(m('borg', 'changed'))} | {secs(m('virtnbdbackup', 'live_inc_changed'))} | "
      f"{pair(m('stillpoint', 'off_changed'), m('stillpoint', 'live_inc_changed'))} |")
    p(f"| 1 % in 64 KiB pieces, scattered (live incremental) | – | – | – | "
      f"{secs(m('virtnbdbackup', 'live_inc_scatter'))} | – / {secs(m('stillpoint', 'live_inc_scatter'))} |")
    p(f"| restore of the full | {secs(m('qemu-img', 'convert_qcow2'))} (convert -O qcow2) | "
      f"{secs(m('restic', 'restore'))} (raw) | {secs(m('borg', 'restore'))} (raw) | "
      f"{secs(m('virtnbdbackup', 'restore'))} (qcow2) | {secs(m('stillpoint', 'restore_qcow2'))} (qcow2), "
      f"{secs(m('stillpoint', 'restore_raw'))} (raw) |")
    p(f"| repository after the full | – | {mb(m('restic', 'full', 'stored'))} | {mb(m('borg', 'full', 'stored'))} | "
      f"{mb(m('virtnbdbackup', 'live_full', 'stored'))} | {mb(m('stillpoint', 'off_full', 'stored'))} / "
      f"{mb(m('stillpoint', 'live_full', 'stored'))} |")
    p(f"| repository growth, scattered 1 % | – | – | – | {mb(m('virtnbdbackup', 'live_inc_scatter', 'growth'))} | "
      f"– / {mb(m('stillpoint', 'live_inc_scatter', 'growth'))} |")
    p(f"| peak RSS (largest of its runs' medians) | {tool_rss('qemu-img', ['convert_raw', 'convert_qcow2'])} | "
      f"{tool_rss('restic', ['full', 'again', 'changed', 'restore'])} | "
      f"{tool_rss('borg', ['full', 'again', 'changed', 'restore'])} | "
      f"{tool_rss('virtnbdbackup', ['live_full', 'live_inc_same', 'live_inc_changed', 'live_inc_scatter', 'restore'])} | "
      f"{tool_rss('stillpoint', sp_ops)} |")
    p("")

    # --- every run --------------------------------------------------------------------------
    p("<details><summary>Every measurement (medians; all wall times in the last column)</summary>")
    p("")
    p("| tool | run | wall | user | sys | cores used | peak RSS | read | stored / growth | wall of each round |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    seen = []
    for r in lines:
        key = (r.get("tool"), r.get("op"))
        if "wall_s" in r and key not in seen:
            seen.append(key)
    for tool, op in seen:
        wall, user, sys_ = m(tool, op), m(tool, op, "user_s"), m(tool, op, "sys_s")
        cores = div((user or 0) + (sys_ or 0), wall)
        growth = m(tool, op, "growth")
        stored = m(tool, op, "stored")
        store = mb(stored) + (f" / +{growth / 1e6:.0f} MB" if growth is not None else "")
        walls = runs.all_walls(tool, op)
        p(f"| {tool} | {op} | {secs(wall)} | {secs(user)} | {secs(sys_)} | {fmt(cores)} | "
          f"{rss(m(tool, op, 'rss_kib'))} | {mb(m(tool, op, 'read'))} | {store if stored is not None else '–'} | "
          f"{' '.join(f'{w:.2f}' for w in walls[:8])}{' …' if len(walls) > 8 else ''} |")
    p("")
    p("user/sys are of the measured command and the children it waited for (qemu-nbd for stillpoint "
      "offline); QEMU's own work on a running VM is not in them for either stillpoint or "
      "virtnbdbackup. Peak RSS is the largest single process (GNU time). stillpoint's live runs "
      "capture the guest's root volume (boot, always included) beside the image; virtnbdbackup's "
      "sizes leave out its copies of the guest's kernel and initrd.")
    p("</details>")
    p("")

    # --- goals ------------------------------------------------------------------------------
    goals = []

    def goal(text, value, target, met, detail=""):
        verdict = "–" if met is None else ("**met**" if met else "**not met**")
        goals.append(f"| {text} | {value} | {target} | {verdict} | {detail} |")

    def at_least(x, limit):
        return None if x is None else x >= limit

    def at_most(x, limit):
        return None if x is None else x <= limit

    allocated = meta["allocated"]
    convert_raw, convert_qcow2 = m("qemu-img", "convert_raw"), m("qemu-img", "convert_qcow2")
    flushed = m("qemu-img", "convert_raw_flushed")
    for op, label in (("off_full", "Full capture, stopped VM"), ("live_full", "Full capture, running VM")):
        r = div(convert_raw, m("stillpoint", op))
        wall = m("stillpoint", op)
        cores = div((m("stillpoint", op, "user_s") or 0) + (m("stillpoint", op, "sys_s") or 0), wall)
        goal(f"{label} ÷ qemu-img convert -O raw (throughput)", fmt(r, "×"), "≥ 0.8×", at_least(r, 0.8),
             f"{secs(wall)} vs {secs(convert_raw)}; {fmt(div(allocated / 1e6, wall), ' MB/s', 0)} of "
             f"allocated data; {fmt(cores)} cores busy; against convert -t writeback (output flushed) "
             f"{fmt(div(flushed, wall), '×')}")
    rss_values = [m("stillpoint", op, "rss_kib") for op in sp_ops]
    rss_values = [v for v in rss_values if v is not None]
    peak = max(rss_values) if rss_values else None
    goal("stillpoint peak RSS", rss(peak), "≤ 256 MiB", at_most(peak / 1024 if peak else None, 256))

    writes = [r for r in lines if r.get("op") == "writes" and r.get("tool") == "stillpoint"
              and r.get("plan") == "scatter.plan"]
    clusters = statistics.median([w["clusters_64k"] for w in writes]) if writes else None
    dirty = clusters * 65536 if clusters else None
    read = m("stillpoint", "live_inc_scatter", "read")
    goal("Scattered 1 %: bytes read ÷ changed bytes at the bitmap's granularity (64 KiB)",
         fmt(div(read, dirty), "×"), "≤ 1.5×", at_most(div(read, dirty), 1.5),
         f"read {mb(read)}, changed {mb(dirty)}"
         + (f", {statistics.median([w['chunks_4m'] for w in writes]):.0f} 4 MiB chunks touched" if writes else ""))
    growth = m("stillpoint", "live_inc_scatter", "growth")
    goal("Scattered 1 %: repository growth ÷ changed bytes after compression",
         fmt(div(growth, meta["scatter_zstd"]), "×"), "≤ 3×", at_most(div(growth, meta["scatter_zstd"]), 3),
         f"growth {mb(growth)}, changed {mb(meta['scatter_zstd'])} after zstd -3 (the data is random)")
    inc, full = m("stillpoint", "live_inc_scatter"), m("stillpoint", "live_full")
    share = div(inc, full)
    goal("Scattered 1 %: incremental time ÷ the full's", fmt(share * 100 if share else None, " %", 1), "≤ 5 %",
         at_most(share, 0.05), f"{secs(inc)} vs {secs(full)}")
    vnb = m("virtnbdbackup", "live_inc_scatter")
    goal("Scattered 1 %: virtnbdbackup's incremental time ÷ stillpoint's", fmt(div(vnb, inc), "×"), "≥ 2×",
         at_least(div(vnb, inc), 2), f"{secs(vnb)} vs {secs(inc)}; virtnbdbackup stored "
         f"{mb(m('virtnbdbackup', 'live_inc_scatter', 'growth'))}")

    for fmt_name, convert in (("qcow2", convert_qcow2), ("raw", convert_raw)):
        restore = m("stillpoint", f"restore_{fmt_name}")
        goal(f"Restore to {fmt_name} ÷ qemu-img convert -O {fmt_name} (throughput)", fmt(div(convert, restore), "×"),
             "≥ 1.0×", at_least(div(convert, restore), 1.0), f"{secs(restore)} vs {secs(convert)} (snapshot export)")
    cfs = m("stillpoint", "create_from_snapshot")
    goal("create-from-snapshot (qcow2) ÷ qemu-img convert -O qcow2", fmt(div(convert_qcow2, cfs), "×"), "≥ 1.0×",
         at_least(div(convert_qcow2, cfs), 1.0), f"{secs(cfs)} vs {secs(convert_qcow2)}")
    for fmt_name in ("qcow2", "raw"):
        restore, convert = m("stillpoint", f"chain_restore_{fmt_name}"), m("qemu-img", f"chain_convert_{fmt_name}")
        goal(f"Restore to {fmt_name} after {meta['chain']} scattered incrementals ÷ qemu-img convert",
             fmt(div(convert, restore), "×"), "≥ 1.0×", at_least(div(convert, restore), 1.0),
             f"{secs(restore)} vs {secs(convert)}")

    window = {}
    for vm in ("w2", "w8"):
        bare = [r["round_trip_ms"] for r in lines if r.get("tool") == "window" and r.get("op") == "bare" and r["vm"] == vm]
        own = [r["t"]["frozen_window"] - r["t"]["freeze"] - r["t"]["thaw"] for r in lines
               if r.get("tool") == "window" and r.get("op") == "snapshot" and r["vm"] == vm]
        whole = [r["t"]["frozen_window"] for r in lines
                 if r.get("tool") == "window" and r.get("op") == "snapshot" and r["vm"] == vm]
        window[vm] = (bare, own, whole)
    for vm, label in (("w2", "2 volumes"), ("w8", "8 volumes")):
        bare, own, whole = window[vm]
        p99 = percentile(own, 99)
        goal(f"Frozen window, stillpoint's own share (window − freeze − thaw), {label}, p50 / p99",
             f"{fmt(percentile(own, 50), ' ms', 1)} / {fmt(p99, ' ms', 1)}",
             "≤ 5 ms p99 (8 volumes)" if vm == "w8" else "(reference)",
             at_most(p99, 5.0) if vm == "w8" else None,
             f"n = {len(own)}; whole window p50 {fmt(percentile(whole, 50), ' ms', 0)}; bare agent "
             f"freeze+thaw p50 / p99 {fmt(percentile(bare, 50), ' ms', 0)} / {fmt(percentile(bare, 99), ' ms', 0)}")

    limits = [r for r in lines if r.get("tool") == "limits"]
    limit = None
    if limits:
        l = limits[-1]
        per_core = 1 / (1 / l["sha256_bps"] + 1 / l["zstd_decompress_bps"])
        limit = per_core * l["nproc"]
        p(f"Machine limits (one core; same run): SHA-256 {l['sha256_bps'] / 1e6:.0f} MB/s (`openssl speed "
          f"-evp sha256`, 4 MiB blocks), zstd -3 on a 256 MiB sample of the image: compress "
          f"{l['zstd_compress_bps'] / 1e6:.0f} MB/s, decompress {l['zstd_decompress_bps'] / 1e6:.0f} MB/s "
          f"(`zstd -b3`). Hash + decompress: {per_core / 1e6:.0f} MB/s a core, {limit / 1e6:.0f} MB/s on "
          f"{l['nproc']} cores — the read-back limit.")
        p("")
    verify = m("stillpoint", "verify")
    checked = m("stillpoint", "verify", "bytes_checked")
    speed = div(checked, verify)
    goal("repo verify ÷ (SHA-256 + zstd decompress) limit", fmt(div(speed, limit), "×"), "≥ 0.9×",
         at_least(div(speed, limit), 0.9), f"{fmt(div(speed, 1e6), ' MB/s', 0)} ({mb(checked)} in {secs(verify)})")
    readback = div(allocated, m("stillpoint", "restore_raw"))
    goal("Read-back (restore to raw) ÷ the same limit", fmt(div(readback, limit), "×"), "≥ 0.9×",
         at_least(div(readback, limit), 0.9), f"{fmt(div(readback, 1e6), ' MB/s', 0)} of allocated data")

    p("#### Against the goals of issue 11")
    p("")
    p("| goal | measured | target | verdict | figures |")
    p("|---|---:|---|---|---|")
    out.extend(goals)
    print("\n".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
