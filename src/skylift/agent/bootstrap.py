"""Bootstrapping a node that has python3 and no skylift yet: a stdlib-only script.

The MN runs SCRIPT on the node over SSH (bootstrap_argv; the CA of the MN's repository on
stdin, bootstrap_input). The script records the repository (NODE_ROOT/repo.json and the CA),
downloads the newest skylift-agent and python3-agent-deps of the node's OS release, checks
their size and SHA-256 against the index, unpacks them to a temporary folder and hands over to
the installer inside the code it just downloaded (`python -m skylift.agent.packages install
... --file`): one installer, not two, and the installed code is the code that installed it.
It prints one JSON line {"agent_version", "code_digest"}; an error is one line on stderr and
a non-zero exit.
"""

from __future__ import annotations

SCRIPT = r'''
import hashlib, json, os, re, shutil, ssl, subprocess, sys, tempfile, urllib.request, zipfile

PACKAGES = ("python3-agent-deps", "skylift-agent")  # the deps first: the agent needs them


def fail(message):
    print(f"skylift bootstrap: {message}", file=sys.stderr)
    sys.exit(1)


def arg(name):
    argv = sys.argv[1:]
    if name not in argv or argv.index(name) + 1 >= len(argv):
        fail(f"usage: {name} is missing")
    return argv[argv.index(name) + 1]


def key(version):
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", version)]


def get(url, context):
    try:
        with urllib.request.urlopen(url, timeout=120, context=context) as resp:
            return resp.read()
    except Exception as exc:
        fail(f"cannot download {url}: {exc}")


def unpack(path, dest):
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            name = info.filename
            if name.startswith("/") or "\\" in name or ".." in name.split("/") \
                    or (info.external_attr >> 16) & 0o170000 == 0o120000:
                fail(f"{os.path.basename(path)} holds an unsafe member {name!r}")
        zf.extractall(dest)


def main():
    root = os.path.abspath(arg("--node-root"))
    url, os_release = arg("--repo-url").rstrip("/"), arg("--os")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", os_release):
        fail(f"invalid OS release {os_release!r}")
    ca_pem = sys.stdin.read().strip()
    os.makedirs(os.path.join(root, "cache"), exist_ok=True)
    repo = {"url": url, "os": os_release, "ca": None}
    context = None
    if url.startswith("https:"):
        if not ca_pem:
            fail("an https repository needs its CA certificate on stdin")
        repo["ca"] = os.path.join(root, "repo-ca.pem")
        with open(repo["ca"], "w") as fh:
            fh.write(ca_pem + "\n")
        context = ssl.create_default_context(cafile=repo["ca"])
    tmp = os.path.join(root, ".repo.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(repo, fh)
    os.replace(tmp, os.path.join(root, "repo.json"))
    where = f"{url}/{os_release}"
    try:
        index = json.loads(get(f"{where}/repodata/index.json", context))
    except ValueError:
        fail(f"{where}/repodata/index.json is not a repository index")
    work = tempfile.mkdtemp(prefix="bootstrap-", dir=os.path.join(root, "cache"))
    try:
        got = {}
        for name in PACKAGES:
            found = [p for p in index.get("packages", []) if p.get("name") == name]
            if not found:
                fail(f"the repository {where} has no {name}")
            pkg = max(found, key=lambda p: key(p["version"]))
            file = pkg["file"]
            if "/" in file or file.startswith("."):
                fail(f"the repository names an unsafe file {file!r}")
            data = get(f"{where}/packages/{file}", context)
            digest = hashlib.sha256(data).hexdigest()
            if digest != pkg["sha256"] or len(data) != pkg["size"]:
                fail(f"{file} does not match the repository index (SHA-256 {digest})")
            path = os.path.join(root, "cache", file)
            with open(path + ".tmp", "wb") as fh:
                fh.write(data)
            os.replace(path + ".tmp", path)
            unpack(path, os.path.join(work, name))
            got[name] = (pkg["version"], path, digest)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = os.pathsep.join(os.path.join(work, n) for n in reversed(PACKAGES))
        env["PYTHONNOUSERSITE"] = "1"
        answer = {}
        for name in PACKAGES:
            version, path, digest = got[name]
            done = subprocess.run(
                [sys.executable, "-m", "skylift.agent.packages", "--node-root", root,
                 "install", name, version, "--file", path, "--sha256", digest],
                env=env, cwd="/", capture_output=True, text=True)
            if done.returncode:
                lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
                fail(f"installing {name} {version} failed: {' '.join(lines[:3])}")
            answer = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    code = answer.get("code") or {}
    print(json.dumps({"agent_version": answer.get("version"),
                      "code_digest": code.get("code_digest")}))


main()
'''


def bootstrap_argv(node_root: str, repo_url: str, os_release: str,
                   python: str = "python3") -> list[str]:
    """The command that bootstraps a node (SCRIPT run by the node's python)."""
    return [python, "-c", SCRIPT, "--node-root", node_root, "--repo-url", repo_url,
            "--os", os_release]


def bootstrap_input(ca_pem: str) -> str:
    """What the bootstrap reads on stdin: the CA of the repository's HTTPS server ("" for
    plain HTTP)."""
    return ca_pem if ca_pem.endswith("\n") or not ca_pem else ca_pem + "\n"
