"""cluster/: the launcher config validates against Ray's own schema, every Kubernetes manifest
parses, and every command they run names a real job script with flags that script accepts.

No cluster is started here; tests/test_ray_jobs.py submits the same scripts to a real local Ray.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
MANIFESTS = sorted((CLUSTER / "k8s").glob("*.yaml"))
IMAGE_FILES = [CLUSTER / "aws.yaml", *MANIFESTS]
JOB_COMMAND = re.compile(r"\bpython\s+(jobs/\S+\.py)\b")
SHELL_BREAKS = {"&&", "||", ";", "|", ">", "2>&1"}


# ---------------------------------------------------------------------------------------------
# Entry points: `python jobs/<script>.py <flags>` -> the script's own argparse parser
# ---------------------------------------------------------------------------------------------
class _Parsed(Exception):
    """Raised in place of parsing, to hand the job's parser out of its ``main``."""


def job_parser(script: Path) -> argparse.ArgumentParser:
    """The argparse parser a job builds in ``main(argv)``, caught at its first ``parse_args``.

    The job is imported from its file and its ``main`` is called; the parse is intercepted before
    any work happens, so this works for any job that parses first, as jobs/ do (STYLE.md).
    """
    spec = importlib.util.spec_from_file_location(f"_job_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    caught: list[argparse.ArgumentParser] = []

    def intercept(parser, args=None, namespace=None):
        caught.append(parser)
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, "parse_args", intercept):
        with pytest.raises(_Parsed):
            module.main([])
    return caught[0]


def job_commands(text: str) -> list[list[str]]:
    """Every ``python jobs/<script>.py ...`` in a command string, as argv lists from the script on.

    Shell continuations and YAML comment markers are joined first, so commented examples count
    too; a command ends at a shell operator or the end of its line.
    """
    joined = re.sub(r"\\\n\s*(#\s*)?", " ", text)
    commands = []
    for match in JOB_COMMAND.finditer(joined):
        line = joined[match.start():].split("\n", 1)[0]
        words = shlex.split(line, comments=False, posix=True)
        argv = []
        for word in words[1:]:
            if word in SHELL_BREAKS:
                break
            argv.append(word)
        commands.append(argv)
    return commands


def entrypoint_problems(argv: list[str]) -> list[str]:
    """What is wrong with one job command: a missing script, or flags/values its parser refuses."""
    script = REPO / argv[0]
    if not script.is_file():
        return [f"{argv[0]}: no such job script"]
    parser = job_parser(script)
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(argv[1:])
    except SystemExit:
        return [f"{argv[0]}: {stderr.getvalue().strip().splitlines()[-1]}"]
    return []


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
def load_documents(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def walk(node, key: str):
    """Every value stored under ``key`` anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def embedded_documents(doc: dict) -> list[dict]:
    """Kubernetes objects carried as YAML text inside a ConfigMap (a RayJob a CronJob creates)."""
    if doc.get("kind") != "ConfigMap":
        return []
    found = []
    for text in (doc.get("data") or {}).values():
        for inner in yaml.safe_load_all(text):
            if isinstance(inner, dict) and "kind" in inner:
                found.append(inner)
    return found


def all_objects() -> list[tuple[Path, dict]]:
    objects = []
    for path in MANIFESTS:
        for doc in load_documents(path):
            objects.append((path, doc))
            objects.extend((path, inner) for inner in embedded_documents(doc))
    return objects


def ray_jobs() -> list[tuple[Path, dict]]:
    """(file, RayJob spec) for every RayJob, standalone, in a RayCronJob or inside a ConfigMap."""
    specs = []
    for path, doc in all_objects():
        if doc.get("kind") == "RayJob":
            specs.append((path, doc["spec"]))
        elif doc.get("kind") == "RayCronJob":
            specs.append((path, doc["spec"]["jobTemplate"]))
    return specs


def cluster_specs() -> list[tuple[Path, dict]]:
    specs = [(p, d["spec"]) for p, d in all_objects() if d.get("kind") == "RayCluster"]
    return specs + [(p, s["rayClusterSpec"]) for p, s in ray_jobs()]


def pinned_ray() -> str:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    return re.search(r'"ray\[[^\]]*\]==([\d.]+)"', pyproject).group(1)


def project_image() -> str:
    return yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))["docker"]["image"]


def containers(pod_template: dict) -> list[dict]:
    spec = pod_template["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


# ---------------------------------------------------------------------------------------------
# The entry-point check itself, on doctored strings: it must refuse what does not exist
# ---------------------------------------------------------------------------------------------
def test_entrypoint_check_accepts_a_real_command():
    argv = job_commands("python jobs/train.py --dataset BC5CDR --gpu --num-workers 4 --output s3://b/r --name x")[0]
    assert argv[:3] == ["jobs/train.py", "--dataset", "BC5CDR"]
    assert entrypoint_problems(argv) == []


@pytest.mark.parametrize(
    "command, expected",
    [
        ("python jobs/train.py --dataset BC5CDR --num-gpus 4", "unrecognized arguments: --num-gpus"),
        ("python jobs/train.py --dataset BC5CDR --num-workers four", "invalid int value"),
        ("python jobs/train.py --precision fp8", "invalid choice"),
        ("python jobs/trian.py --dataset BC5CDR", "no such job script"),
    ],
)
def test_entrypoint_check_refuses_a_doctored_command(command, expected):
    problems = entrypoint_problems(job_commands(command)[0])
    assert problems and expected in problems[0], problems


def test_commands_are_found_across_continuations_and_end_at_shell_operators():
    text = "#   ray job submit -- \\\n#       python jobs/train.py --gpu \\\n#       --epochs 2 && echo done\n"
    assert job_commands(text) == [["jobs/train.py", "--gpu", "--epochs", "2"]]


# ---------------------------------------------------------------------------------------------
# The AWS launcher config
# ---------------------------------------------------------------------------------------------
def test_launcher_config_validates_against_the_schema_shipped_with_ray():
    import jsonschema
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(config, schema)
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict: a typo is refused
        jsonschema.validate({**config, "head_node_typ": "head"}, schema)


def test_launcher_config_passes_rays_own_checks_with_defaults_filled_in():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8")))
    validate_config(config)
    nodes = config["available_node_types"]
    assert config["provider"]["type"] == "aws"
    assert nodes["gpu_worker"]["node_config"]["InstanceType"].startswith(("g5.", "g6.", "p4", "p5"))
    assert nodes["gpu_worker"]["max_workers"] > nodes["gpu_worker"].get("min_workers", 0)
    assert nodes[config["head_node_type"]]["resources"] == {"CPU": 0}


# ---------------------------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------------------------
def test_dockerfile_pins_the_projects_ray_and_torch_and_copies_what_exists():
    dockerfile = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    ray_version = pinned_ray()
    base = re.search(r"^ARG RAY_IMAGE=(\S+)", dockerfile, re.M).group(1)
    assert base.startswith(f"rayproject/ray:{ray_version}-"), base
    assert f'"ray[default,train,data]=={ray_version}"' in dockerfile
    setup_torch = re.search(r"TORCH_SPEC=\$\{TORCH_SPEC:-(\S+)\}", (REPO / "scripts/setup.sh").read_text()).group(1)
    assert f"ARG TORCH_SPEC={setup_torch}" in dockerfile
    assert "index-url" not in dockerfile  # PyPI's Linux torch wheel is the CUDA build
    for source in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.M):
        for name in source.split():
            assert (REPO / name).exists(), f"Dockerfile copies {name}, which is not in the repository"


def test_every_node_and_pod_runs_the_project_image():
    image = project_image()
    assert image.endswith(":0.1.0") or re.search(r":\d", image), image
    from adabiobert import __version__

    assert image.rsplit(":", 1)[1] == __version__, "tag the image with the package version"
    for path, doc in all_objects():
        for template in walk(doc, "template"):
            if isinstance(template, dict) and "spec" in template and "containers" in template["spec"]:
                for container in containers(template):
                    if container["name"].startswith("ray-") or container["name"] == "fetch-data":
                        assert container["image"] == image, f"{path.name}: {container['name']} runs {container['image']}"


# ---------------------------------------------------------------------------------------------
# The Kubernetes manifests
# ---------------------------------------------------------------------------------------------
def test_every_manifest_parses_into_named_kubernetes_objects():
    assert MANIFESTS, "no manifests under cluster/k8s"
    for path, doc in all_objects():
        assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: an object without apiVersion/kind"
        assert doc.get("metadata", {}).get("name"), f"{path.name}: a {doc['kind']} without a name"


def test_ray_clusters_run_the_pinned_ray_with_a_cpu_free_head_and_one_gpu_per_gpu_pod():
    ray_version = pinned_ray()
    specs = cluster_specs()
    assert specs
    for path, spec in specs:
        assert spec["rayVersion"] == ray_version, path.name
        assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0", path.name
        groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
        for container in containers(groups["gpu"]["template"]) if "gpu" in groups else []:
            assert container["resources"]["limits"]["nvidia.com/gpu"] == "1", path.name
    # A GPU job has a gpu group (its size is checked against the job's workers below); the
    # standalone cluster is for GPU work too.
    for path, spec in ray_jobs():
        if flag_values(job_commands(spec["entrypoint"])[0]).get("--gpu"):
            assert "gpu" in {g["groupName"] for g in spec["rayClusterSpec"]["workerGroupSpecs"]}, path.name
    for path, doc in all_objects():
        if doc["kind"] == "RayCluster":
            assert "gpu" in {g["groupName"] for g in doc["spec"]["workerGroupSpecs"]}, path.name


def gpu_capacity(cluster_spec: dict) -> int:
    gpus = 0
    for group in cluster_spec["workerGroupSpecs"]:
        per_pod = sum(int(c["resources"]["limits"].get("nvidia.com/gpu", 0)) for c in containers(group["template"]))
        gpus += per_pod * group["maxReplicas"]
    return gpus


def cpu_capacity(cluster_spec: dict) -> int:
    """CPUs of the worker groups at their largest (the head takes no tasks: num-cpus 0)."""
    cpus = 0
    for group in cluster_spec["workerGroupSpecs"]:
        per_pod = sum(int(c["resources"]["limits"]["cpu"]) for c in containers(group["template"]))
        cpus += per_pod * group["maxReplicas"]
    return cpus


def head_mounts(cluster_spec: dict) -> list[str]:
    head = cluster_spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    return [m["mountPath"] for m in head.get("volumeMounts", [])]


def test_every_ray_job_runs_a_real_script_with_flags_it_accepts():
    jobs = ray_jobs()
    assert jobs
    for path, spec in jobs:
        commands = job_commands(spec["entrypoint"])
        assert len(commands) == 1, f"{path.name}: entrypoint must run one job script: {spec['entrypoint']!r}"
        assert entrypoint_problems(commands[0]) == [], path.name


def comments(path: Path) -> str:
    """The comment lines of a YAML file or Dockerfile, without their ``#``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(line.strip()[1:] for line in lines if line.strip().startswith("#"))


def test_every_commented_example_in_cluster_runs_a_real_script_with_flags_it_accepts():
    found = 0
    for path in [CLUSTER / "aws.yaml", CLUSTER / "Dockerfile", *MANIFESTS]:
        for argv in job_commands(comments(path)):
            found += 1
            assert entrypoint_problems(argv) == [], f"{path.name}: {' '.join(argv)}"
    assert found >= 2  # aws.yaml and raycluster.yaml show `ray job submit`


def test_every_ray_job_and_commented_example_passes_only_paths_a_ray_job_accepts():
    """A job under `ray job submit` refuses a relative local path (adabiobert/submission.py): none here."""
    from adabiobert.submission import check_job_paths

    path_flags = {"--data-root", "--word-vectors", "--output", "--out", "--shards", "--model", "--lexicon"}
    commands = [job_commands(spec["entrypoint"])[0] for _, spec in ray_jobs()]
    commands += [argv for path in [CLUSTER / "aws.yaml", CLUSTER / "Dockerfile", *MANIFESTS]
                 for argv in job_commands(comments(path))]
    for argv in commands:
        paths = {flag: value for flag, value in flag_values(argv).items() if flag in path_flags}
        assert paths, argv
        check_job_paths(paths, {"RAY_JOB_CONFIG_JSON_ENV_VAR": "{}"})  # raises on a relative one


def flag_values(argv: list[str]) -> dict[str, str | bool]:
    values: dict[str, str | bool] = {}
    for i, word in enumerate(argv[1:], start=1):
        if word.startswith("--"):
            following = argv[i + 1] if i + 1 < len(argv) else "--"
            values[word] = following if not following.startswith("--") else True
    return values


def test_ray_jobs_ask_for_resources_their_cluster_has_and_write_to_s3():
    for path, spec in ray_jobs():
        argv = job_commands(spec["entrypoint"])[0]
        flags = flag_values(argv)
        cluster = spec["rayClusterSpec"]
        if flags.get("--gpu"):
            workers = int(flags.get("--num-workers") or flags.get("--num-actors") or 1)
            assert workers <= gpu_capacity(cluster), f"{path.name}: {workers} GPU workers, cluster has {gpu_capacity(cluster)}"
        assert str(flags["--output"]).startswith("s3://"), f"{path.name}: output must outlive the cluster"
        for flag in ("--data-root", "--word-vectors", "--model"):
            value = flags.get(flag)
            if isinstance(value, str) and value.startswith("/"):
                assert any(value.startswith(m + "/") for m in head_mounts(cluster)), f"{path.name}: {flag} {value} is not mounted on the head"


def test_the_sync_job_writes_to_s3_on_cpus_only_with_a_task_per_cpu():
    syncs = [(p, s) for p, s in ray_jobs() if "jobs/sync_pmc.py" in s["entrypoint"]]
    assert syncs, "no RayJob runs jobs/sync_pmc.py"
    for path, spec in syncs:
        flags = flag_values(job_commands(spec["entrypoint"])[0])
        cluster = spec["rayClusterSpec"]
        assert str(flags["--output"]).startswith("s3://"), path.name
        assert "--gpu" not in flags and gpu_capacity(cluster) == 0, f"{path.name}: the sync needs no GPU"
        assert "gpu" not in {g["groupName"] for g in cluster["workerGroupSpecs"]}, path.name
        # one CPU per fetch unit (adabiobert/distributed/sync.py): every unit can run at once
        assert 1 <= int(flags["--workers"]) <= cpu_capacity(cluster), path.name
        assert flags["--no-progress"] is True, path.name


def test_ray_jobs_clean_up_retry_and_run_the_images_code():
    workdir = re.search(r"^WORKDIR (\S+)", (CLUSTER / "Dockerfile").read_text(), re.M).group(1)
    for path, spec in ray_jobs():
        assert spec["shutdownAfterJobFinishes"] is True, path.name
        assert spec["backoffLimit"] >= 1, path.name
        assert spec["activeDeadlineSeconds"] > 0, path.name
        runtime_env = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime_env["working_dir"] == workdir, path.name


def test_the_training_job_resumes_by_name_and_retries_workers():
    (path, spec), = [(p, s) for p, s in ray_jobs() if "jobs/train.py" in s["entrypoint"]]
    flags = flag_values(job_commands(spec["entrypoint"])[0])
    assert flags["--gpu"] is True
    assert int(flags["--max-failures"]) >= 1
    assert flags["--name"] and flags["--name"] is not True


# ---------------------------------------------------------------------------------------------
# The nightly chain: a CronJob whose pod runs the sync RayJob, then the annotation RayJob
# (deployed); the annotation alone as a RayCronJob (alternative)
# ---------------------------------------------------------------------------------------------
PLACEHOLDER = "__RUN_DATE__"
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NIGHTLY = CLUSTER / "k8s" / "cronjob-nightly.yaml"
CHAIN = {"sync.yaml": "sync", "annotate.yaml": "annotate"}
"""The ConfigMap's keys, in the order the pod runs them, and each RayJob's component label."""


def nightly_objects() -> dict[str, dict]:
    docs = load_documents(NIGHTLY)
    by_kind = {d["kind"]: d for d in docs}
    assert set(by_kind) == {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "CronJob"}
    return by_kind


def nightly_rayjobs(run_date: str = PLACEHOLDER) -> dict[str, dict]:
    """The ConfigMap's RayJobs by key, with the night's date put in as the pod does."""
    data = nightly_objects()["ConfigMap"]["data"]
    return {key: yaml.safe_load(text.replace(PLACEHOLDER, run_date)) for key, text in data.items()}


def nightly_script() -> str:
    return nightly_objects()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]


def test_the_cronjob_runs_the_sync_then_the_annotation_of_its_configmap_for_the_nights_date():
    objects = nightly_objects()
    cron = objects["CronJob"]["spec"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"]
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    script = pod["containers"][0]["command"][-1]
    (volume,) = pod["volumes"]
    (mount,) = pod["containers"][0]["volumeMounts"]
    assert volume["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert f"{mount['mountPath']}/" in script and f"s/{PLACEHOLDER}/" in script

    nights = nightly_rayjobs("2026-11-25")
    assert list(nights) == list(CHAIN)
    for key, component in CHAIN.items():
        night = nights[key]
        name = night["metadata"]["name"]
        assert night["kind"] == "RayJob" and DNS_1123.match(name), name
        assert name == f"pmc-{component}-2026-11-25" and f"pmc-{component}-$RUN_DATE" in script
        assert night["metadata"]["labels"] == {"app.kubernetes.io/name": "adabiobert", "app.kubernetes.io/component": component}
    sync = flag_values(job_commands(nights["sync.yaml"]["spec"]["entrypoint"])[0])
    annotate = flag_values(job_commands(nights["annotate.yaml"]["spec"]["entrypoint"])[0])
    assert annotate["--run-date"] == "2026-11-25"
    assert annotate["--shards"] == sync["--output"]  # annotation tags what the sync wrote
    # One run at a time per root: the two RayJobs (one after the other) end before their waiting
    # pod, which ends before the next daily run. Per attempt: KubeRay restarts a RayJob's deadline
    # on each retry, which the pod's guard covers (test below).
    assert cron["schedule"].split()[2:] == ["*", "*", "*"]
    deadlines = sum(night["spec"]["activeDeadlineSeconds"] for night in nights.values())
    assert deadlines < cron["jobTemplate"]["spec"]["activeDeadlineSeconds"] < 24 * 3600


def test_the_scheduler_may_create_list_and_delete_rayjobs_and_nothing_more():
    objects = nightly_objects()
    account = objects["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["serviceAccountName"]
    assert objects["ServiceAccount"]["metadata"]["name"] == account
    binding = objects["RoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account}]
    assert binding["roleRef"]["name"] == objects["Role"]["metadata"]["name"]
    (rule,) = objects["Role"]["rules"]
    assert rule["apiGroups"] == ["ray.io"] and rule["resources"] == ["rayjobs"]
    assert {"create", "get", "list", "delete"} <= set(rule["verbs"])


def test_the_raycronjob_alternative_runs_the_same_annotation_and_says_why_it_does_not_sync():
    (alternative,) = load_documents(CLUSTER / "k8s" / "raycronjob-annotate.yaml")
    assert alternative["kind"] == "RayCronJob" and set(alternative["spec"]) == {"schedule", "suspend", "jobTemplate"}
    objects = nightly_objects()
    night = nightly_rayjobs()["annotate.yaml"]["spec"]
    night["entrypoint"] = night["entrypoint"].replace(f" --run-date {PLACEHOLDER}", "")
    assert alternative["spec"]["jobTemplate"] == night
    assert alternative["spec"]["schedule"] == objects["CronJob"]["spec"]["schedule"]
    assert alternative["spec"]["jobTemplate"]["activeDeadlineSeconds"] < 24 * 3600  # no overlap (per attempt)
    # No sync RayCronJob, by decision: the header and docs/operations.md say why.
    assert not any("jobs/sync_pmc.py" in spec["entrypoint"] for path, spec in ray_jobs() if path.name.startswith("raycronjob"))
    assert "Why no sync RayCronJob" in comments(CLUSTER / "k8s" / "raycronjob-annotate.yaml")
    assert "### Why no sync RayCronJob" in (REPO / "docs" / "operations.md").read_text(encoding="utf-8")


def test_the_nightly_job_tags_with_a_model_on_s3_and_all_gpus_it_has():
    for path, spec in ray_jobs():
        if "jobs/annotate.py" not in spec["entrypoint"]:
            continue
        flags = flag_values(job_commands(spec["entrypoint"])[0])
        assert flags["--gpu"] is True and str(flags["--model"]).startswith("s3://"), path.name
        assert int(flags["--num-actors"]) == gpu_capacity(spec["rayClusterSpec"]), path.name
        gpu_group = next(g for g in spec["rayClusterSpec"]["workerGroupSpecs"] if g["groupName"] == "gpu")
        # the job sizes its pool from the GPUs present at start: no scale-from-zero
        assert gpu_group["minReplicas"] == gpu_group["replicas"] == gpu_group["maxReplicas"], path.name


# ---------------------------------------------------------------------------------------------
# KubeRay versions: each manifest claims the newest version among the fields it uses
# ---------------------------------------------------------------------------------------------
KUBERAY_KIND_SINCE = {"RayCluster": (1, 0), "RayJob": (1, 0), "RayCronJob": (1, 6)}
"""ray.io/v1 came with KubeRay 1.0.0; RayCronJob (alpha) with 1.6.0 (docs/operations.md)."""
KUBERAY_RAYJOB_FIELD_SINCE = {
    "entrypoint": (1, 0),
    "runtimeEnvYAML": (1, 0),
    "shutdownAfterJobFinishes": (1, 0),
    "ttlSecondsAfterFinished": (1, 0),
    "rayClusterSpec": (1, 0),
    "activeDeadlineSeconds": (1, 1),  # KubeRay v1.1.0 release notes (#1933)
    "backoffLimit": (1, 2),  # KubeRay v1.2.0 release notes ("Support retry in RayJob", #2192)
}
"""RayJob spec fields and the KubeRay release that introduced each, as in docs/operations.md."""
NEEDS_KUBERAY = re.compile(r"Needs KubeRay >= (\d+)\.(\d+)")


def required_kuberay(path: Path) -> tuple[int, int] | None:
    """The newest KubeRay release among the kinds and RayJob fields a manifest uses (None: no KubeRay)."""
    needed = [KUBERAY_KIND_SINCE[d["kind"]] for p, d in all_objects() if p == path and d["kind"] in KUBERAY_KIND_SINCE]
    for job_path, spec in ray_jobs():
        if job_path != path:
            continue
        for field in spec:
            assert field in KUBERAY_RAYJOB_FIELD_SINCE, (
                f"{path.name}: RayJob field {field!r} is not in KUBERAY_RAYJOB_FIELD_SINCE; add it with the "
                "KubeRay release that introduced it (and to docs/operations.md)")
            needed.append(KUBERAY_RAYJOB_FIELD_SINCE[field])
    return max(needed) if needed else None


def test_each_manifest_claims_the_kuberay_version_its_fields_need():
    for path in MANIFESTS:
        claims = [tuple(map(int, c)) for c in NEEDS_KUBERAY.findall(comments(path))]
        required = required_kuberay(path)
        if required is None:
            assert not claims and "Needs no KubeRay" in comments(path), path.name
        else:
            assert claims == [required], f"{path.name}: claims KubeRay {claims}, its fields need {required}"
    assert required_kuberay(CLUSTER / "k8s" / "rayjob-train.yaml") == (1, 2)  # backoffLimit


def test_the_operations_doc_asks_for_the_kuberay_the_deployed_manifests_need():
    deployed = ["serviceaccount.yaml", "raycluster.yaml", "rayjob-train.yaml", NIGHTLY.name]
    needed = max(required_kuberay(CLUSTER / "k8s" / name) or (0, 0) for name in deployed)
    docs = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    (claim,) = re.findall(r"\*\*Kubernetes \(KubeRay ≥ (\d+)\.(\d+)\)\.\*\*", docs)
    assert tuple(map(int, claim)) == needed


# ---------------------------------------------------------------------------------------------
# The ServiceAccount: a manifest of its own, so that giving jobs their account starts no head
# ---------------------------------------------------------------------------------------------
def test_the_service_account_is_a_manifest_of_its_own_that_starts_nothing():
    (account,) = load_documents(CLUSTER / "k8s" / "serviceaccount.yaml")
    assert account["kind"] == "ServiceAccount" and account["metadata"]["name"] == "adabiobert"
    defined: dict[str, list[str]] = {}
    for path, doc in all_objects():
        if doc["kind"] == "ServiceAccount":
            defined.setdefault(doc["metadata"]["name"], []).append(path.name)
    assert defined["adabiobert"] == ["serviceaccount.yaml"]
    for path, doc in all_objects():
        for name in walk(doc, "serviceAccountName"):
            assert name in defined, f"{path.name}: pods run as {name}, which no manifest defines"
            if name == "adabiobert":
                assert "kubectl apply -f cluster/k8s/serviceaccount.yaml" in comments(path), path.name


def test_no_header_says_the_cluster_manifest_provides_the_service_account():
    for path in MANIFESTS:
        for line in comments(path).splitlines():
            assert not ("apply -f cluster/k8s/raycluster.yaml" in line and "ServiceAccount" in line), f"{path.name}: {line.strip()}"


# ---------------------------------------------------------------------------------------------
# The nightly pod: its image, built here from sources that keep their releases, and its script
# ---------------------------------------------------------------------------------------------
DOCKER_INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
                       "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` per instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword, arguments.strip()))
        pending = ""
    assert not pending, f"{path.name}: ends inside a continued line"
    return instructions


def base_image(path: Path) -> str:
    """The image of the (single) FROM, with ``${ARG}`` replaced by the ARG's default."""
    instructions = dockerfile_instructions(path)
    defaults = dict(a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    (base,) = [a for k, a in instructions if k == "FROM"]
    return re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], base)


@pytest.mark.parametrize("name", ["Dockerfile", "kubectl.Dockerfile"])
def test_dockerfiles_parse_and_pin_their_base_image(name):
    instructions = dockerfile_instructions(CLUSTER / name)
    unknown = [k for k, _ in instructions if k not in DOCKER_INSTRUCTIONS]
    assert not unknown, f"{name}: not Dockerfile instructions: {unknown}"
    assert [k for k, _ in instructions if k != "ARG"][0] == "FROM"
    image = base_image(CLUSTER / name)
    assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), image


def kubectl_version() -> str:
    defaults = dict(a.split("=", 1) for k, a in dockerfile_instructions(CLUSTER / "kubectl.Dockerfile") if k == "ARG" and "=" in a)
    return defaults["KUBECTL_VERSION"]


def test_the_kubectl_image_is_alpine_and_the_release_binary_checked_against_its_checksum():
    assert base_image(CLUSTER / "kubectl.Dockerfile").startswith("docker.io/library/alpine:3.")
    assert re.fullmatch(r"v1\.\d+\.\d+", kubectl_version())
    (run,) = [a for k, a in dockerfile_instructions(CLUSTER / "kubectl.Dockerfile") if k == "RUN"]
    assert "https://dl.k8s.io/release/${KUBECTL_VERSION}/bin/linux/${TARGETARCH}/kubectl" in run
    assert "sha256sum -c" in run and "set -eux" in run


def test_the_nightly_pod_runs_the_kubectl_image_built_here_and_nothing_from_bitnami():
    pod = nightly_objects()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    registry = project_image().rsplit("/", 1)[0]
    expected = f"{registry}/adabiobert-kubectl:{kubectl_version().removeprefix('v')}"
    assert pod["containers"][0]["image"] == expected
    assert f"-t {expected}" in comments(NIGHTLY)
    for path in [CLUSTER / "aws.yaml", CLUSTER / "Dockerfile", CLUSTER / "kubectl.Dockerfile", *MANIFESTS]:
        assert "bitnami" not in path.read_text(encoding="utf-8"), path.name


FAKE_KUBECTL = """#!/bin/sh
# Stands in for kubectl: records what it is asked. `get rayjob -l ...` prints $FAKE_DIR/listed;
# a created RayJob is Running at its first poll and Complete at its second, with the job status
# in $FAKE_DIR/status-<name> (SUCCEEDED if there is none).
echo "$*" >> "$FAKE_DIR/calls"
case "$1" in
  create)
    n=$(cat "$FAKE_DIR/creates" 2>/dev/null || echo 0); echo $(( n + 1 )) > "$FAKE_DIR/creates"
    cat > "$FAKE_DIR/created-$n.yaml" ;;
  get)
    case "$*" in
      *" -l "*) cat "$FAKE_DIR/listed" ;;
      *jobDeploymentStatus*)
        polls=$(( $(cat "$FAKE_DIR/polls-$3" 2>/dev/null || echo 0) + 1 )); echo "$polls" > "$FAKE_DIR/polls-$3"
        if [ "$polls" -lt 2 ]; then printf Running; else printf Complete; fi ;;
      *jobStatus*) cat "$FAKE_DIR/status-$3" 2>/dev/null || printf SUCCEEDED ;;
    esac ;;
esac
"""
BUSYBOX = shutil.which("busybox")
SHELLS = [
    pytest.param("sh", id="sh"),
    pytest.param("busybox", id="busybox", marks=pytest.mark.skipif(
        BUSYBOX is None, reason="no busybox on PATH: the script was run with /bin/sh only")),
]
"""The pod's image is Alpine (BusyBox sh, date, sed, expr); /bin/sh here is another shell with GNU tools."""


@dataclass(frozen=True)
class Night:
    """What one run of the nightly pod's script did against the stand-in kubectl."""

    result: subprocess.CompletedProcess
    calls: list[str]
    created: list[dict]
    today: datetime.date


def run_nightly_pod(tmp_path: Path, shell: str, listed: str = "", statuses: dict[str, str] | None = None) -> Night:
    """Run the CronJob's script with /bin/sh (or BusyBox's sh and tools) and the stand-in kubectl.

    Args:
        listed: what `kubectl get rayjob -l ...` prints (creation time, name, deployment status).
        statuses: the jobStatus of RayJobs by name; SUCCEEDED for the others.
    """
    (mount,) = nightly_objects()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    config = tmp_path / "config"
    config.mkdir()
    for key, text in nightly_objects()["ConfigMap"]["data"].items():
        (config / key).write_text(text)
    (tmp_path / "listed").write_text(listed)
    for name, status in (statuses or {}).items():
        (tmp_path / f"status-{name}").write_text(status)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "kubectl").write_text(FAKE_KUBECTL)
    (fake_bin / "kubectl").chmod(0o755)
    path = f"{fake_bin}:{os.environ['PATH']}"
    sh = "/bin/sh"
    if shell == "busybox":  # BusyBox's applets ahead of the system's tools, as in the Alpine image
        applets = tmp_path / "busybox"
        applets.mkdir()
        for applet in ("sh", "date", "sed", "expr", "cat", "printf", "echo", "test", "["):
            (applets / applet).symlink_to(BUSYBOX)
        path = f"{fake_bin}:{applets}:{os.environ['PATH']}"
        sh = str(applets / "sh")
    script = nightly_script()
    assert script.count("sleep 60") == 1
    # The ConfigMap where the pod mounts it, and no minute between polls (a stand-in `sleep` on
    # PATH would not do: Debian's BusyBox runs its own applets first).
    script = script.replace(mount["mountPath"], str(config)).replace("sleep 60", "sleep 0")
    env = {**os.environ, "PATH": path, "FAKE_DIR": str(tmp_path)}
    result = subprocess.run([sh, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    today = datetime.datetime.now(datetime.timezone.utc).date()
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    created = [yaml.safe_load(p.read_text()) for p in sorted(tmp_path.glob("created-*.yaml"), key=lambda p: int(p.stem.split("-")[1]))]
    return Night(result, calls, created, today)


def listed_rayjobs(*rows: tuple[float, str, str]) -> str:
    """`kubectl get rayjob -l ...` output: (days old, name, jobDeploymentStatus) per RayJob."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return "".join(f"{(now - datetime.timedelta(days=days)).strftime('%Y-%m-%dT%H:%M:%SZ')} {name} {state}\n"
                   for days, name, state in rows)


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("sync_status", "annotate_status", "exit_zero", "runs"),
    [("SUCCEEDED", "SUCCEEDED", True, ["sync", "annotate"]),
     ("FAILED", "SUCCEEDED", False, ["sync"]),  # a failed sync ends the night: no annotation
     ("SUCCEEDED", "FAILED", False, ["sync", "annotate"])],
)
def test_the_nightly_pod_runs_the_sync_then_the_annotation_and_fails_unless_both_succeeded(
        tmp_path, shell, sync_status, annotate_status, exit_zero, runs):
    today = datetime.datetime.now(datetime.timezone.utc).date()
    night = run_nightly_pod(tmp_path, shell, statuses={f"pmc-sync-{today}": sync_status, f"pmc-annotate-{today}": annotate_status})

    assert (night.result.returncode == 0) is exit_zero, night.result.stderr
    assert [c["metadata"]["name"] for c in night.created] == [f"pmc-{step}-{night.today}" for step in runs]
    assert night.created[0] == nightly_rayjobs(str(night.today))["sync.yaml"]
    if "annotate" in runs:
        assert flag_values(job_commands(night.created[1]["spec"]["entrypoint"])[0])["--run-date"] == str(night.today)
        # the annotation is created only after the sync's last poll said Complete
        last_sync_poll = max(i for i, c in enumerate(night.calls) if f"get rayjob pmc-sync-{night.today}" in c)
        creates = [i for i, c in enumerate(night.calls) if c == "create -f -"]
        assert creates[0] < last_sync_poll < creates[1]
    for step in runs:  # each polled until Complete, then its status printed
        assert (tmp_path / f"polls-pmc-{step}-{night.today}").read_text().strip() == "2"
    assert f"pmc-sync-{night.today}: deployment Complete, job {sync_status}" in night.result.stdout
    assert (f"pmc-annotate-{night.today}: deployment" in night.result.stdout) is ("annotate" in runs)


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector (`k=v` and `k in (a,b)` terms, comma-joined) selects ``labels``."""
    for term in re.split(r",(?![^()]*\))", selector):
        term = term.strip()
        if match := re.fullmatch(r"([\w./-]+)\s+in\s+\(([^)]*)\)", term):
            if labels.get(match.group(1)) not in {v.strip() for v in match.group(2).split(",")}:
                return False
        elif match := re.fullmatch(r"([\w./-]+)\s*==?\s*([\w.-]+)", term):
            if labels.get(match.group(1)) != match.group(2):
                return False
        else:
            raise AssertionError(f"selector term not understood here: {term!r}")
    return True


def test_the_selector_matcher_follows_kubernetes_syntax():
    labels = {"app.kubernetes.io/name": "adabiobert", "app.kubernetes.io/component": "sync"}
    assert selector_matches("app.kubernetes.io/name=adabiobert,app.kubernetes.io/component in (sync, annotate)", labels)
    assert not selector_matches("app.kubernetes.io/name=adabiobert,app.kubernetes.io/component in (annotate)", labels)
    assert not selector_matches("app.kubernetes.io/name==other", labels)


@pytest.mark.parametrize("shell", SHELLS)
def test_the_nightly_pod_deletes_this_chains_rayjobs_that_ended_more_than_8_days_ago(tmp_path, shell):
    listed = listed_rayjobs((10, "pmc-annotate-old", "Complete"), (8.5, "pmc-sync-old", "Failed"),
                            (8 - 1 / 24, "pmc-sync-almost", "Complete"), (2, "pmc-annotate-recent", "Complete"))
    night = run_nightly_pod(tmp_path, shell, listed=listed)

    assert night.result.returncode == 0, night.result.stderr
    deleted = [c for c in night.calls if c.startswith("delete ")]
    assert deleted == ["delete rayjob pmc-annotate-old --ignore-not-found", "delete rayjob pmc-sync-old --ignore-not-found"]
    # The listing asks for exactly this chain's RayJobs: both nightly RayJobs, not training's.
    (listing,) = [c for c in night.calls if " -l " in c]
    selector = listing.split(" -l ", 1)[1].split(" -o ", 1)[0]
    for night_job in nightly_rayjobs().values():
        assert selector_matches(selector, night_job["metadata"]["labels"]), selector
    for path, doc in all_objects():
        if doc["kind"] in ("RayJob", "RayCluster") and path != NIGHTLY:
            assert not selector_matches(selector, doc["metadata"].get("labels", {})), f"{path.name}: {selector}"


@pytest.mark.parametrize("shell", SHELLS)
def test_the_nightly_pod_starts_nothing_while_a_rayjob_of_an_earlier_night_runs(tmp_path, shell):
    """A RayJob can outlive its pod (KubeRay restarts its deadline on each retry): the next night waits."""
    listed = listed_rayjobs((9, "pmc-sync-stuck", "Running"), (1, "pmc-annotate-yesterday", ""),
                            (3, "pmc-annotate-done", "Complete"))
    night = run_nightly_pod(tmp_path, shell, listed=listed)

    assert night.result.returncode != 0
    assert night.created == [] and not [c for c in night.calls if c.startswith("delete ")]
    assert "pmc-sync-stuck" in night.result.stderr and "pmc-annotate-yesterday" in night.result.stderr
    assert "pmc-annotate-done" not in night.result.stderr


# ---------------------------------------------------------------------------------------------
# ttlSecondsAfterFinished: short, and each value justified in docs/operations.md
# ---------------------------------------------------------------------------------------------
def test_each_rayjob_keeps_its_finished_cluster_briefly_and_the_docs_say_why():
    docs = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    section = docs.split("### `ttlSecondsAfterFinished`", 1)[1].split("\n#", 1)[0]
    for path, spec in ray_jobs():
        ttl = spec["ttlSecondsAfterFinished"]
        assert 0 < ttl <= 600, f"{path.name}: {ttl} s of an idle cluster after every run"
        (row,) = [line for line in section.splitlines() if line.startswith("|") and path.name in line]
        assert f"| {ttl} s |" in row, f"{path.name}: docs give another value: {row}"


# ---------------------------------------------------------------------------------------------
# The launcher: what its examples read on the head is copied there
# ---------------------------------------------------------------------------------------------
def launcher_head_folders() -> list[str]:
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))
    folders = [m for c in config["head_setup_commands"] for m in re.findall(r"download_dir\('[^']+', '(/[^']+)'\)", c)]
    return folders + list(config.get("file_mounts") or {})


def test_the_launcher_copies_to_the_head_what_its_and_the_readmes_cluster_examples_read():
    folders = launcher_head_folders()
    assert "/home/ray/data/corpora" in folders and "/home/ray/data/pmc-w2v" in folders
    examples = job_commands(comments(CLUSTER / "aws.yaml")) + job_commands((REPO / "README.md").read_text(encoding="utf-8"))
    checked = 0
    for argv in examples:
        for flag in ("--data-root", "--word-vectors"):
            value = flag_values(argv).get(flag)
            if isinstance(value, str) and value.startswith("/"):
                checked += 1
                assert any(value == f or value.startswith(f + "/") for f in folders), f"{' '.join(argv)}: {flag} {value}"
    assert checked >= 4  # aws.yaml's and the README's training examples, corpus and vectors each


def test_the_launcher_writes_on_the_head_only_under_the_images_users_home():
    """head_setup_commands run in the container as the image's user: `ray` (rayproject/ray), not root."""
    instructions = dockerfile_instructions(CLUSTER / "Dockerfile")
    assert base_image(CLUSTER / "Dockerfile").startswith("rayproject/ray:")  # whose user is ray, home /home/ray
    assert [a for k, a in instructions if k == "USER"] in ([], ["ray"])
    assert all("--chown=ray:" in a for k, a in instructions if k == "COPY")
    config = yaml.safe_load((CLUSTER / "aws.yaml").read_text(encoding="utf-8"))
    written = launcher_head_folders()
    written += [m for c in config["head_setup_commands"] for m in re.findall(r"mkdir -p (\S+)", c)]
    assert written
    for folder in written:
        assert folder.startswith("/home/ray/"), f"aws.yaml: the head's user cannot write {folder}"

