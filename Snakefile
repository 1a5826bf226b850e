# Wires the stages; all logic lives in methods/ (training, pruning) and reports/ (pages).
# Targets: one per registered table (methods/base/tables.py: table1, table2, table4, figure1, figure2, figure3, figure5 (EB),
# table8, table9 (RT), and a plug-in's), claims, all_tables. Run folders and names: methods/runs/cells.py.
import shlex
import sys

import yaml

from methods.runs.cells import (built_tables, load_tables, name_pattern, page_inputs, parse_dense, parse_lottery, parse_retrain,
                          parse_search, refused_runs, snapshot_draws, table_runs)
from methods.base.config import load_scale
from methods.runs.digest import inputs_of, marker, run_of, write_marker
from methods.base.inputs import workflow_config
from methods.base.preempt import ignore_warnings
from methods.workflow.jobs import RUNTIME_YAML, groups, lottery_args, lrs_flag, retrain_args, runtime_minutes
from methods.base.plugins import load as load_plugins, load_configured
from methods.base.tables import TABLES

configfile: "config.yaml"

# Every key checked before any rule (methods/base/inputs.py): a misspelt key would be ignored silently,
# and --config download=false arrives as the string "false".
CFG = workflow_config(config)
# A plug-in's methods, models and tables (methods/base/plugins.py): those PRUNING_SUITE_PLUGINS already
# names (methods rerun, a variable set by hand) and the installed entry points, then the plugins key's;
# every job this workflow starts loads the same files through the environment.
load_configured()
load_plugins(CFG.plugins)
SCALE = load_scale(CFG.scale)
R = f"{CFG.results}/{SCALE.name}"
PY = sys.executable
DATA = f"--data-root {CFG.data_root}"
DOWNLOAD = "--download" if CFG.download else ""
SPEC = load_tables(CFG.tables)
TABLES_ARG = f"--tables {CFG.tables}" if CFG.tables else ""
REFUSE = refused_runs(SCALE, SPEC)  # runs of tables whose specification sets refuse_disconnected
SNAPSHOTS = ",".join(snapshot_draws(SPEC)) or "none"
# Runs per training job (the scale's runs_per_job; `--config runs_per_job=1` gives a job per run).
# A group job's outputs are update(): Snakemake neither deletes its finished runs' results before
# running it (one missing result reruns the group) nor, with keep-incomplete (profiles/default),
# after one run fails; each stage skips a run whose result is no older than its upstream run's
# (methods.base.io.finished) and whose config digest is current (methods.runs.digest). So `--forcerun` of a
# group retrains only its missing or stale runs:
# methods.workflow.rerun forces one cell with a job per run.
GROUP = CFG.runs_per_job or SCALE.runs_per_job
BUILT = built_tables(SPEC)  # the registered tables (methods/base/tables.py) this specification lists
RETRAINS = set(table_runs(SCALE, SPEC, "retrain"))
LOTTERIES = set(table_runs(SCALE, SPEC, "lottery"))

# Run-folder names as methods/runs/cells.py parses them (one grammar for the workflow and the code).
wildcard_constraints:
    search=name_pattern("search"),
    run=name_pattern("run"),
    dense=name_pattern("dense"),
    ticket=name_pattern("ticket"),

localrules: all_tables, data, report_fidelity, report_index, config_digest, claims, report_claims


def results(runs):
    return sorted({f"{r.path(R)}/result.json" for r in runs})


def digest_marker(run):
    """The run's config-digest marker, an input of its training job (methods/runs/digest.py): a stale
    result's marker is newer than the result, so the job reruns; a current one's is aged."""
    return marker(run, R, SCALE, run in REFUSE)


# The marker of a run without a result (a finished run's is written while the DAG is built).
rule config_digest:
    output: "{folder}/config-{digest}.digest"
    wildcard_constraints: digest="[0-9a-f]{12}"
    run: write_marker(output[0], inputs_of(r := run_of(wildcards.folder), SCALE, r in REFUSE))


RUNTIME = yaml.safe_load(RUNTIME_YAML.read_text())
# GPU, CPUs and memory of every training job, in the rules themselves (slurm/resources.yaml): a
# command-line --set-resources of one resource then cannot drop the others.
TRAIN_RES = yaml.safe_load((RUNTIME_YAML.parent / "resources.yaml").read_text())
# A SLURM warning (--signal=USR1, submitit's USR2) is for the trainer alone: this Snakemake, the
# in-job ones and their shells ignore it instead of dying and orphaning it (methods/base/preempt.py).
ignore_warnings()


def runtime(run):
    return runtime_minutes(run, SCALE, RUNTIME)


rule all_tables:
    input: f"{R}/report/index.html"


# The papers' conclusions judged from the cells they read (benchmarks/claims.yaml). Run it with the
# trimmed specification so only those cells train: --config tables=benchmarks/claims_tables.yaml
# (claims_mid.yaml, then claims_mid_eb3.yaml: the subset this 2-core machine trains at scale mid, in two parts).
rule claims:
    input: f"{R}/report/claims.html", f"{R}/report/index.html"


# One target per registered table: `snakemake table1`.
for t in TABLES:
    rule:
        name: t
        localrule: True
        input: f"{R}/report/{t}.html"


# Checks (and, with download=true, fetches) the datasets once, on the submitting host, before
# any training job starts: compute nodes often have no network, and parallel downloads collide.
rule data:
    output: f"{R}/data.json"
    shell: "{PY} -m methods data {DATA} {DOWNLOAD} --out {output}"


rule search:
    input: ancient(f"{R}/data.json"),  # a re-checked data root must not retrain anything
        lambda wc: digest_marker(parse_search(wc.search))
    output: f"{R}/search/{{search}}/result.json", f"{R}/search/{{search}}/history.npz"
    log: f"{R}/search/{{search}}/log.txt"
    params: s=lambda wc: parse_search(wc.search), lrs=lambda wc: lrs_flag(parse_search(wc.search))
    resources: runtime=lambda wc: runtime(parse_search(wc.search)), **TRAIN_RES
    shell:
        "{PY} -m methods search --scale {SCALE.name} {DATA} --model {params.s.model} --dataset {params.s.dataset}"
        " --schedule {params.s.schedule} --lr {params.s.lr} {params.lrs} --seed {params.s.seed} --precision {params.s.precision}"
        " --snapshot-epochs {SNAPSHOTS}"
        " --out {R}/search/{wildcards.search} >> {log} 2>&1"


if GROUP == 1:
    rule retrain:
        input: f"{R}/search/{{search}}/result.json", lambda wc: digest_marker(parse_retrain(wc.search, wc.run))
        output: f"{R}/search/{{search}}/retrain/{{run}}/result.json"
        log: f"{R}/search/{{search}}/retrain/{{run}}/log.txt"
        params: cmd=lambda wc: retrain_args(r := parse_retrain(wc.search, wc.run), SCALE, R, DATA, r in REFUSE)
        resources: runtime=lambda wc: runtime(parse_retrain(wc.search, wc.run)), **TRAIN_RES
        shell: "{PY} -m methods {params.cmd} >> {log} 2>&1"
else:  # small scales: one process trains several retrainings of a search (torch and the data load once)
    for i, (up, runs) in enumerate(groups(RETRAINS, lambda r: r.search, GROUP)):
        rule:
            name: f"retrain_group{i}"
            input: f"{up.path(R)}/result.json", [digest_marker(r) for r in runs]
            output: [update(f"{r.path(R)}/result.json") for r in runs]  # see GROUP
            log: f"{up.path(R)}/retrain/group{i}.log"
            params: cmds=" ".join(shlex.quote(retrain_args(r, SCALE, R, DATA, r in REFUSE)) for r in runs)
            resources: runtime=sum(runtime(r) for r in runs), **TRAIN_RES
            shell: "{PY} -m methods batch {params.cmds} >> {log} 2>&1"


# RT Tables 8 and 9: one dense run per (model, LR, seed), pruned by every cell of that model.
rule dense:
    input: ancient(f"{R}/data.json"), lambda wc: digest_marker(parse_dense(wc.dense))
    output: f"{R}/dense/{{dense}}/result.json", f"{R}/dense/{{dense}}/snapshots/epoch0.pt",
        f"{R}/dense/{{dense}}/snapshots/final.pt"
    log: f"{R}/dense/{{dense}}/log.txt"
    params: d=lambda wc: parse_dense(wc.dense)
    resources: runtime=lambda wc: runtime(parse_dense(wc.dense)), **TRAIN_RES
    shell:
        "{PY} -m methods dense --scale {SCALE.name} {DATA} --model {params.d.model} --dataset {params.d.dataset}"
        " --schedule {params.d.schedule} --lr {params.d.lr} --seed {params.d.seed} --out {R}/dense/{wildcards.dense} >> {log} 2>&1"


if GROUP == 1:
    rule lottery:
        input: f"{R}/dense/{{dense}}/result.json", lambda wc: digest_marker(parse_lottery(wc.dense, wc.ticket))
        output: f"{R}/dense/{{dense}}/lottery/{{ticket}}/result.json"
        log: f"{R}/dense/{{dense}}/lottery/{{ticket}}/log.txt"
        params: cmd=lambda wc: lottery_args(t := parse_lottery(wc.dense, wc.ticket), SCALE, R, DATA, t in REFUSE)
        resources: runtime=lambda wc: runtime(parse_lottery(wc.dense, wc.ticket)), **TRAIN_RES
        shell: "{PY} -m methods {params.cmd} >> {log} 2>&1"
else:
    for i, (up, runs) in enumerate(groups(LOTTERIES, lambda t: t.dense, GROUP)):
        rule:
            name: f"lottery_group{i}"
            input: f"{up.path(R)}/result.json", [digest_marker(t) for t in runs]
            output: [update(f"{t.path(R)}/result.json") for t in runs]  # see GROUP
            log: f"{up.path(R)}/lottery/group{i}.log"
            params: cmds=" ".join(shlex.quote(lottery_args(t, SCALE, R, DATA, t in REFUSE)) for t in runs)
            resources: runtime=sum(runtime(t) for t in runs), **TRAIN_RES
            shell: "{PY} -m methods batch {params.cmds} >> {log} 2>&1"


# One page per built table: it reads its cells' runs and their upstream runs (methods.runs.cells.page_inputs).
for t in BUILT:
    rule:
        name: f"report_{t}"
        localrule: True
        input: page_inputs(SCALE, SPEC, t, R)
        output: [f"{R}/{f}" for f in TABLES[t].files()]
        params: page=t
        shell: "{PY} -m reports {params.page} --scale {SCALE.name} --results {R} {DATA} {TABLES_ARG}"


rule report_fidelity:
    input: "reports/fidelity.yaml"
    output: f"{R}/report/fidelity.html"
    shell: "{PY} -m reports fidelity --scale {SCALE.name} --results {R} {DATA} {TABLES_ARG}"


# The claims page reads every built table's runs and links their cell pages, so it follows the table pages.
rule report_claims:
    input: [f"{R}/report/{t}.html" for t in BUILT], "benchmarks/claims.yaml"
    output: f"{R}/tables/claims.csv", f"{R}/report/claims.html"
    shell: "{PY} -m reports claims --scale {SCALE.name} --results {R} {DATA} {TABLES_ARG}"


rule report_index:  # the pages of the tables in the specification: one left out (or without models) is not built
    input: [f"{R}/report/{t}.html" for t in BUILT], f"{R}/report/fidelity.html", f"{R}/report/claims.html"
    output: f"{R}/report/index.html"
    shell: "{PY} -m reports index --scale {SCALE.name} --results {R} {DATA} {TABLES_ARG}"
