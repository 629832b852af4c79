"""Offline validation of deploy/: what can be checked without a Docker engine, a cluster or internet.

- Dockerfile: parsed with dockerfile-parse; bases pinned, final stage non-root with a HEALTHCHECK.
- Compose file: validated against the Compose Specification schema vendored by check-jsonschema
  (a PyPI package), plus the stack's wiring (and that the shipped Prometheus config scrapes it).
- Kubernetes YAML: core kinds against kubernetes-validate's schemas (strict); the FlinkDeployment
  against the operator CRD fields documented in deploy/README.md, its pod template as a core Pod.
- Beam options (Flink submit Job, Dataflow flags) through Beam's own option parser.
- systemd units: `systemd-analyze verify` when available, and always parsed as INI.

Every check is a function that returns a list of problems, so each test also shows that a broken
input is caught. Validators that are not installed make their tests skip with the reason.
(promtool/amtool checks of deploy/prometheus and deploy/alertmanager live in another test file.)
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
FLINK_DIR = DEPLOY / "flink"
DATAFLOW_FLAGS = DEPLOY / "dataflow" / "dataflow.flags"
LAUNCH = DEPLOY / "dataflow" / "launch.sh"
SYSTEMD_DIR = DEPLOY / "systemd"
K8S_VERSION = "1.33"


def _need(module: str) -> Any:
    return pytest.importorskip(module, reason=f"{module} not installed: install the test extra")


# --------------------------------------------------------------------------------------------
# Dockerfile

PINNED = re.compile(r"(@sha256:[0-9a-f]{64}$)|(:[^:/@]*\d+\.\d+\.\d+[^:/@]*$)")


def dockerfile_problems(text: str) -> list[str]:
    """Pinned external bases, a non-root USER and a HEALTHCHECK in the final stage."""
    from dockerfile_parse import DockerfileParser

    with tempfile.TemporaryDirectory() as tmp:  # setting .content writes the file: never in the repo
        parser = DockerfileParser(path=str(Path(tmp) / "Dockerfile"))
        parser.content = text
        parents = parser.parent_images
        structure = parser.structure
    problems: list[str] = []
    stages: list[str] = []
    final: list[dict[str, Any]] = []
    for parent in parents:
        if parent in stages:
            continue
        if not PINNED.search(parent) or parent.endswith(":latest"):
            problems.append(f"base image not pinned to an exact version or digest: {parent}")
    for instr in structure:
        if instr["instruction"] == "FROM":
            match = re.search(r"\bAS\s+(\S+)\s*$", instr["value"], re.IGNORECASE)
            if match:
                stages.append(match.group(1))
            final = []
        final.append(instr)
    names = [i["instruction"] for i in final]
    users = [i["value"].split(":")[0].strip() for i in final if i["instruction"] == "USER"]
    if not users:
        problems.append("final stage has no USER")
    elif users[-1] in ("0", "root"):
        problems.append(f"final stage runs as root (USER {users[-1]})")
    checks = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    if not checks or checks[-1].strip().upper() == "NONE" or "CMD" not in checks[-1]:
        problems.append("final stage has no HEALTHCHECK CMD")
    if "ENTRYPOINT" not in names:
        problems.append("final stage has no ENTRYPOINT")
    else:
        entry = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"][-1]
        if not entry.lstrip().startswith("["):
            problems.append("ENTRYPOINT is in shell form: newsmon would not receive SIGTERM")
    return problems


def test_dockerfile_is_pinned_non_root_with_healthcheck() -> None:
    _need("dockerfile_parse")
    assert dockerfile_problems(DOCKERFILE.read_text()) == []


def test_dockerfile_checks_catch_bad_images() -> None:
    _need("dockerfile_parse")
    bad = DOCKERFILE.read_text().replace("python:3.11.13-slim-bookworm", "python:3.11-slim")
    bad = bad.replace("USER 10001:10001", "USER root")
    bad = re.sub(r"HEALTHCHECK .*?\n(  CMD .*\n)", "", bad, flags=re.DOTALL)
    problems = dockerfile_problems(bad)
    assert any("not pinned" in p for p in problems)
    assert any("runs as root" in p for p in problems)
    assert any("HEALTHCHECK" in p for p in problems)


def test_dockerfile_stages_and_build_context() -> None:
    parser = _need("dockerfile_parse").DockerfileParser(path=str(DOCKERFILE))
    froms = [i["value"] for i in parser.structure if i["instruction"] == "FROM"]
    assert [f.split()[-1] for f in froms] == ["build", "beam-worker", "app"]  # app is the default target
    assert "apache/beam_python3.11_sdk:2.77.0" in parser.parent_images
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"apache-beam==2.77.0"' in pyproject, "worker image tag must follow the apache-beam pin"
    # Everything COPY'd from the context must be let through by .dockerignore (an allow-list).
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    sources = []
    for instr in parser.structure:
        if instr["instruction"] == "COPY" and "--from=" not in instr["value"]:
            sources.extend(instr["value"].split()[:-1])
    assert sources, "no COPY from the build context"
    for src in sources:
        assert any(src == a or src.startswith(a + "/") for a in allowed), (
            f"{src} is excluded by .dockerignore"
        )
    for src in ("pyproject.toml", "pipelines", "connectors", "transforms"):
        assert (ROOT / src).exists(), src


# --------------------------------------------------------------------------------------------
# Compose


def compose_schema_problems(doc: Any) -> list[str]:
    jsonschema = _need("jsonschema")
    _need("check_jsonschema")
    ref = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(ref.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema, format_checker=validator_cls.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_matches_compose_spec_schema() -> None:
    assert compose_schema_problems(load_compose()) == []


def test_compose_schema_check_catches_mistakes() -> None:
    doc = load_compose()
    doc["services"]["newsmon"]["restart_policy"] = "always"  # not a service key
    doc["services"]["es01"]["ports"] = "9200"  # must be a list
    problems = compose_schema_problems(doc)
    assert any("restart_policy" in p for p in problems), problems
    assert any(p.startswith("services/es01/ports") for p in problems), problems


def test_compose_wires_the_stack() -> None:
    services = load_compose()["services"]
    for name in ("es01", "kibana", "prometheus", "alertmanager", "newsmon", "newsmon-setup"):
        assert name in services, name
    es_env = services["es01"]["environment"]
    assert es_env["xpack.security.enabled"] == "true"
    assert es_env["xpack.security.http.ssl.enabled"] == "true"
    assert es_env["discovery.type"] == "single-node"
    setup = services["newsmon-setup"]
    command = " ".join(setup["command"])
    assert "setup elasticsearch" in command and "setup kibana" in command
    assert setup["restart"] == "no"
    assert services["newsmon"]["depends_on"]["newsmon-setup"]["condition"] == "service_completed_successfully"
    assert setup["depends_on"]["kibana"]["condition"] == "service_healthy"
    for svc in ("newsmon", "newsmon-setup"):
        env = services[svc]["environment"]
        assert env["NEWSMON_ES_URL"].startswith("https://es01:")
        assert env["NEWSMON_ES_CA_CERT"].startswith("/certs/")
        assert services[svc]["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        assert (COMPOSE.parent / services[svc]["build"]["context"] / "deploy/docker/Dockerfile").is_file()
    # Secrets come from the environment (.env), never literal values in the file.
    for svc in services.values():
        for key, value in (svc.get("environment") or {}).items():
            if "PASSWORD" in key or "KEY" in key:
                assert str(value).startswith("${"), f"{key} must be interpolated, not literal"
    # Every published port binds loopback only.
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_mounts_the_projects_prometheus_and_alertmanager_files() -> None:
    services = load_compose()["services"]
    mounts = {
        svc: dict(v.split(":")[1::-1] for v in services[svc]["volumes"] if v.startswith("./"))
        for svc in ("prometheus", "alertmanager")
    }
    assert mounts["prometheus"]["/etc/prometheus"] == "./prometheus"
    assert mounts["alertmanager"]["/etc/newsmon/alertmanager"] == "./alertmanager"
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]
    assert "--config.file=/etc/newsmon/alertmanager/alertmanager.yml" in services["alertmanager"]["command"]
    prom_config = DEPLOY / "prometheus" / "prometheus.yml"
    if not prom_config.is_file() or not (DEPLOY / "alertmanager" / "alertmanager.yml").is_file():
        pytest.skip("deploy/prometheus or deploy/alertmanager config absent: written by another helper")
    config = yaml.safe_load(prom_config.read_text())
    for rule_file in config.get("rule_files", []):
        assert (prom_config.parent / rule_file).is_file(), rule_file
    targets = {
        sc["job_name"]: [t for s in sc.get("static_configs", []) for t in s["targets"]]
        for sc in config["scrape_configs"]
    }
    port = services["newsmon"]["environment"]["NEWSMON_METRICS_PORT"]
    assert f"newsmon:{port}" in targets["newsmon"], "Prometheus must scrape the compose service"
    am_targets = [
        t for am in config["alerting"]["alertmanagers"] for s in am["static_configs"] for t in s["targets"]
    ]
    assert am_targets == ["alertmanager:9093"]
    assert "--web.listen-address=0.0.0.0:9093" in services["alertmanager"]["command"]


# --------------------------------------------------------------------------------------------
# Kubernetes manifests (Flink)

# FlinkDeployment fields of the Flink Kubernetes Operator's CRD (flink.apache.org/v1beta1) that
# deploy/README.md documents; the CRD is not among Kubernetes' core schemas.
FLINK_SPEC_KEYS = {
    "image",
    "imagePullPolicy",
    "flinkVersion",
    "flinkConfiguration",
    "serviceAccount",
    "mode",
    "jobManager",
    "taskManager",
    "podTemplate",
    "job",
    "ingress",
    "logConfiguration",
    "restartNonce",
}
FLINK_VERSIONS = {"v1_19", "v1_20", "v2_0", "v2_1", "v2_2"}
FLINK_COMPONENT_KEYS = {"replicas", "resource", "podTemplate"}
FLINK_JOB_KEYS = {
    "jarURI",
    "entryClass",
    "args",
    "parallelism",
    "upgradeMode",
    "state",
    "allowNonRestoredState",
    "initialSavepointPath",
    "savepointTriggerNonce",
    "checkpointTriggerNonce",
    "savepointRedeployNonce",
}


def flink_deployment_problems(doc: dict[str, Any]) -> list[str]:
    kv = _need("kubernetes_validate")
    problems: list[str] = []
    if doc.get("apiVersion") != "flink.apache.org/v1beta1" or doc.get("kind") != "FlinkDeployment":
        return ["not a flink.apache.org/v1beta1 FlinkDeployment"]
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", str(doc.get("metadata", {}).get("name", ""))):
        problems.append("metadata.name is not a DNS label")
    spec = doc.get("spec", {})
    problems += [f"spec.{k}: unknown field" for k in sorted(set(spec) - FLINK_SPEC_KEYS)]
    if spec.get("flinkVersion") not in FLINK_VERSIONS:
        problems.append(
            f"spec.flinkVersion: {spec.get('flinkVersion')!r} not one of {sorted(FLINK_VERSIONS)}"
        )
    if spec.get("mode", "native") not in ("native", "standalone"):
        problems.append("spec.mode: must be native or standalone")
    for key, value in (spec.get("flinkConfiguration") or {}).items():
        if not isinstance(value, str):
            problems.append(f"spec.flinkConfiguration.{key}: must be a string, got {type(value).__name__}")
    for part in ("jobManager", "taskManager"):
        comp = spec.get(part) or {}
        problems += [f"spec.{part}.{k}: unknown field" for k in sorted(set(comp) - FLINK_COMPONENT_KEYS)]
        resource = comp.get("resource") or {}
        if set(resource) - {"cpu", "memory", "ephemeralStorage"}:
            problems.append(f"spec.{part}.resource: unknown field")
        if "memory" in resource and not re.fullmatch(r"\d+[mgMG]?i?", str(resource["memory"])):
            problems.append(f"spec.{part}.resource.memory: {resource['memory']!r}")
        template = comp.get("podTemplate")
        if template is not None:
            try:
                kv.validate(template, K8S_VERSION, strict=True)
            except kv.ValidationError as exc:
                problems.append(f"spec.{part}.podTemplate.{'.'.join(map(str, exc.path))}: {exc.message}")
    job = spec.get("job")
    if job is not None:
        problems += [f"spec.job.{k}: unknown field" for k in sorted(set(job) - FLINK_JOB_KEYS)]
        if job.get("upgradeMode", "stateless") not in ("stateless", "savepoint", "last-state"):
            problems.append("spec.job.upgradeMode")
    return problems


def flink_docs() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(FLINK_DIR.glob("*.yaml")):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_core_kubernetes_manifests_match_schemas() -> None:
    kv = _need("kubernetes_validate")
    core = [(p, d) for p, d in flink_docs() if d["kind"] != "FlinkDeployment"]
    assert {d["kind"] for _, d in core} >= {"Job", "Secret"}
    for path, doc in core:
        assert kv.validate(doc, K8S_VERSION, strict=True), path


def test_kubernetes_validation_catches_mistakes() -> None:
    kv = _need("kubernetes_validate")
    (job,) = [d for _, d in flink_docs() if d["kind"] == "Job"]
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(kv.ValidationError):
        kv.validate(job, K8S_VERSION, strict=True)
    job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "Always"
    job["spec"]["template"]["spec"]["containers"][0]["commandd"] = ["x"]  # strict: unknown field
    with pytest.raises(kv.ValidationError):
        kv.validate(job, K8S_VERSION, strict=True)


def test_flink_deployment_matches_documented_crd_fields() -> None:
    (deployment,) = [d for _, d in flink_docs() if d["kind"] == "FlinkDeployment"]
    assert flink_deployment_problems(deployment) == []
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["flinkVersion"] = "1.20"
    broken["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] = 2
    broken["spec"]["taskManager"]["podTemplate"]["spec"]["containers"][1]["ports"][0]["containerPort"] = "x"
    broken["spec"]["taskmanager"] = {}
    problems = flink_deployment_problems(broken)
    assert any(p.startswith("spec.flinkVersion") for p in problems)
    assert any("numberOfTaskSlots" in p for p in problems)
    assert any(p.startswith("spec.taskManager.podTemplate") for p in problems)
    assert "spec.taskmanager: unknown field" in problems


def _flink_submit_args() -> list[str]:
    (job,) = [d for _, d in flink_docs() if d["kind"] == "Job"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["newsmon"]
    args = list(container["args"])
    assert args[:2] == ["-v", "run"]
    return args[2:]


def test_flink_submit_job_agrees_with_the_cluster() -> None:
    (deployment,) = [d for _, d in flink_docs() if d["kind"] == "FlinkDeployment"]
    spec = deployment["spec"]
    args = dict(a.split("=", 1) if "=" in a else (a, "") for a in _flink_submit_args())
    assert args["--runner"] == "FlinkRunner"
    assert args["--flink_master"] == f"{deployment['metadata']['name']}-rest:8081"
    major_minor = spec["flinkVersion"].lstrip("v").replace("_", ".")
    assert args["--flink_version"] == major_minor
    assert spec["image"].startswith(f"flink:{major_minor}.")
    assert "--flink_submit_uber_jar" in args and "--streaming" in args
    sidecars = [
        c
        for c in spec["taskManager"]["podTemplate"]["spec"]["containers"]
        if c["name"] != "flink-main-container"
    ]
    (pool,) = sidecars
    assert pool["args"] == ["--worker_pool"]
    assert args["--environment_type"] == "EXTERNAL"
    host, port = args["--environment_config"].split(":")
    assert host == "localhost" and int(port) in [p["containerPort"] for p in pool["ports"]]
    assert pool["envFrom"][0]["secretRef"]["name"] == "newsmon-es"
    assert spec["flinkConfiguration"]["state.backend.type"] == "rocksdb"
    assert spec["flinkConfiguration"]["execution.checkpointing.interval"]


# --------------------------------------------------------------------------------------------
# Beam pipeline options


def beam_unknown_options(flags: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Parse flags exactly as Beam's PipelineOptions does; return (known values, unknown flags)."""
    _need("apache_beam")
    from apache_beam.options import pipeline_options as po

    parser = po._BeamArgumentParser(allow_abbrev=False)
    seen: dict[str, type] = {}
    for cls in po.PipelineOptions.__subclasses__():
        seen.setdefault(str(cls), cls)
    for cls in seen.values():
        cls._add_argparse_args(parser)
    known, unknown = parser.parse_known_args(flags)
    return vars(known), unknown


# Java-side FlinkPipelineOptions the Python SDK passes through in uber-jar mode.
FLINK_JAVA_OPTIONS = {"--checkpointing_interval"}


def test_flink_options_are_known_to_beam() -> None:
    known, unknown = beam_unknown_options(_flink_submit_args())
    assert {u.split("=")[0] for u in unknown} <= FLINK_JAVA_OPTIONS, unknown
    assert known["flink_submit_uber_jar"] is True  # needed for the Java options to reach the runner
    assert known["sdk_worker_parallelism"] == "1"
    assert known["streaming"] is True


def _dataflow_flags(env: dict[str, str]) -> list[str]:
    flags = []
    for line in DATAFLOW_FLAGS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            flags.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], line))
    return flags


DATAFLOW_ENV = {
    "GCP_PROJECT": "proj",
    "GCP_REGION": "asia-southeast2",
    "GCS_BUCKET": "bucket",
    "WORKER_IMAGE": "asia-southeast2-docker.pkg.dev/proj/newsmon/worker:0.1.0",
    "DATAFLOW_SERVICE_ACCOUNT": "sa@proj.iam.gserviceaccount.com",
    "DATAFLOW_SUBNETWORK": "regions/asia-southeast2/subnetworks/default",
}


def test_dataflow_flags_are_known_to_beam() -> None:
    known, unknown = beam_unknown_options(_dataflow_flags(DATAFLOW_ENV))
    assert unknown == []
    assert known["runner"] == "DataflowRunner"
    assert known["streaming"] is True and known["enable_streaming_engine"] is True
    assert known["sdk_container_image"] == DATAFLOW_ENV["WORKER_IMAGE"]
    assert known["sdk_location"] == "container"
    assert known["temp_location"].startswith("gs://bucket/")
    _, unknown = beam_unknown_options(["--runner=DataflowRunner", "--sdk_containr_image=x"])
    assert unknown == ["--sdk_containr_image=x"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_dataflow_launcher_expands_flags_and_refuses_unset_variables(tmp_path: Path) -> None:
    fake = tmp_path / "newsmon"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    base = {"PATH": f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}"}
    ok = subprocess.run(
        ["bash", str(LAUNCH), "--update"],
        check=False,
        env={**base, **DATAFLOW_ENV},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == ["-v", "run", *_dataflow_flags(DATAFLOW_ENV), "--update"]
    missing = {k: v for k, v in DATAFLOW_ENV.items() if k != "GCS_BUCKET"}
    bad = subprocess.run(
        ["bash", str(LAUNCH)],
        check=False,
        env={**base, **missing},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "GCS_BUCKET is not set" in bad.stderr
    assert "run" not in bad.stdout


# --------------------------------------------------------------------------------------------
# systemd


def unit_ini_problems(text: str, *, service_keys: set[str]) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    problems = [f"missing section [{s}]" for s in ("Unit", "Service", "Install") if not parser.has_section(s)]
    if parser.has_section("Service"):
        problems += [f"[Service] lacks {k}=" for k in sorted(service_keys - set(parser["Service"]))]
    return problems


def test_systemd_units_have_restart_env_file_and_logging() -> None:
    service = (SYSTEMD_DIR / "newsmon.service").read_text()
    needed = {
        "ExecStart",
        "User",
        "Restart",
        "RestartSec",
        "EnvironmentFile",
        "StandardOutput",
        "StandardError",
        "SyslogIdentifier",
        "KillSignal",
        "TimeoutStopSec",
        "StateDirectory",
    }
    assert unit_ini_problems(service, service_keys=needed) == []
    assert "Restart=on-failure" in service and "StartLimitBurst=" in service
    assert unit_ini_problems(service.replace("Restart=on-failure\n", ""), service_keys=needed) == [
        "[Service] lacks Restart="
    ]
    setup = (SYSTEMD_DIR / "newsmon-setup.service").read_text()
    assert unit_ini_problems(setup, service_keys={"ExecStart", "EnvironmentFile", "Type"}) == []
    assert "setup elasticsearch" in setup and "setup kibana" in setup
    env_example = (SYSTEMD_DIR / "newsmon.env.example").read_text()
    assert all(line.startswith("#") or not line.strip() for line in env_example.splitlines()), (
        "the example env file must not carry live values"
    )


def systemd_verify_problems(unit_texts: dict[str, str], tmp_path: Path) -> list[str]:
    """`systemd-analyze verify` on copies whose ExecStart points at this checkout's newsmon."""
    tool = shutil.which("systemd-analyze")
    newsmon = Path(sys.executable).with_name("newsmon")
    paths = []
    for name, text in unit_texts.items():
        path = tmp_path / name
        path.write_text(text.replace("/opt/newsmon/bin/newsmon", str(newsmon)))
        paths.append(str(path))
    result = subprocess.run(
        [str(tool), "verify", "--man=no", *paths], check=False, capture_output=True, text=True, timeout=120
    )
    lines = (result.stdout + result.stderr).splitlines()
    problems = [line for line in lines if any(Path(p).name in line for p in paths)]
    if result.returncode != 0:
        problems.append(f"systemd-analyze exited {result.returncode}: {result.stderr.strip()}")
    return problems


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed: units checked as INI only")
    if not Path(sys.executable).with_name("newsmon").exists():
        pytest.skip("the newsmon console script is not installed in this environment (pip install -e .)")
    units = {p.name: p.read_text() for p in sorted(SYSTEMD_DIR.glob("*.service"))}
    assert set(units) == {"newsmon.service", "newsmon-setup.service"}
    (tmp_path / "ok").mkdir()
    assert systemd_verify_problems(units, tmp_path / "ok") == []
    broken = {
        "newsmon.service": units["newsmon.service"].replace("Restart=on-failure", "Restartt=on-failure")
    }
    (tmp_path / "bad").mkdir()
    assert systemd_verify_problems(broken, tmp_path / "bad"), "a misspelt key must be reported"


# --------------------------------------------------------------------------------------------
# README


def test_readme_covers_every_deploy_file_and_says_what_ran() -> None:
    readme = (DEPLOY / "README.md").read_text()
    owned = [DOCKERFILE, COMPOSE, DATAFLOW_FLAGS, LAUNCH, *FLINK_DIR.glob("*.yaml"), *SYSTEMD_DIR.iterdir()]
    for path in owned:
        assert path.name in readme, f"deploy/README.md does not mention {path.name}"
    assert "What was validated" in readme and "What was not run" in readme
