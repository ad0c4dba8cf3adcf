#!/usr/bin/env bash
# The wheels the lent GPU machine lacks for lampo.py and bench/gpu_check.py, into .whl/ (git-ignored),
# for its Python 3.12 on x86-64 Linux, pinned to requirements.txt's tested versions. That machine
# reaches no registry, so they travel with the working tree (64 MiB in all). Run it here, from any
# folder, on a machine with pip and PyPI; then bench/README.md's "gpu_check.py" section gives the call.
#
# What the machine's image has, as this workplace recorded it in 2026-11: Python 3.12.3, torch 2.11.0,
# transformers 5.17.0, huggingface-hub 1.33.0, tokenizers 0.23.2, safetensors 0.8.0, numpy 2.5.2, and
# (versions not recorded) pandas, pyarrow, fsspec, regex, xxhash, sympy, typer, tqdm, pyyaml, absl-py,
# six; no datasets, dill, multiprocess, math-verify, latex2sympy2_extended, antlr4 or rouge-score.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/.whl"
WHEELS=(
    transformers==5.24.0                # the image's 5.17 lacks 5.24's cache= keyword that lampo.py uses
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19          # lampo.py imports datasets
    math-verify==0.9.0 latex2sympy2_extended==1.11.0 antlr4-python3-runtime==4.13.2   # the answer checker
    regex==2026.5.9     # transformers 5.24 refuses to import under regex < 2025.10.22; the image's is unread
    fsspec==2026.9.0    # datasets 5.2 needs fsspec <= 2026.9.0; the image's is unread
)
# Not carried: pyarrow (datasets wants >= 24; its 55 MB wheel would break the 64 MiB limit: gpu_check.py
# needs no dataset and says so if datasets cannot import), nltk (rouge-score's scorer needs it, lampo's
# rouge_score.tokenize does not), and what the image already has in the versions these need.
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64
           manylinux1_x86_64)

rm -rf "$dest"
mkdir -p "$dest"
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]/#/--platform=}" --dest "$dest" "${WHEELS[@]}"
# rouge-score ships only as an sdist; it is pure Python, so the wheel built here is py3-none-any.
python3 -m pip wheel --quiet --no-deps --wheel-dir "$dest" rouge-score==0.1.2

# Check: one wheel per project, every requirement met by a carried wheel or by the image's packages, and
# the total under the limit, with room for the tracked files that travel beside it.
python3 - "$dest" "$repo" <<'EOF'
import subprocess, sys, zipfile
from email.parser import Parser
from pathlib import Path
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

dest, repo = Path(sys.argv[1]), Path(sys.argv[2])
IMAGE = {"torch": "2.11.0", "huggingface-hub": "1.33.0", "tokenizers": "0.23.2", "safetensors": "0.8.0",
         "numpy": "2.5.2"}                                   # recorded versions
IMAGE_UNRECORDED = {"pandas", "pyarrow", "xxhash", "sympy", "typer", "tqdm", "pyyaml", "filelock",
                    "packaging", "absl-py", "six"}          # present, version not recorded
wheels = sorted(dest.glob("*.whl"))
carried = {}
for w in wheels:
    name, version, _, _ = parse_wheel_filename(w.name)
    if name in carried:
        sys.exit(f"two wheels of {name}: keep one, or the install stops")
    carried[name] = version
problems, assumed = [], set()
env = {"python_version": "3.12", "python_full_version": "3.12.3", "platform_machine": "x86_64",
       "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
       "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        requires = Parser().parsestr(z.read(meta).decode()).get_all("Requires-Dist") or []
    for line in requires:
        req = Requirement(line)
        if req.marker and not req.marker.evaluate(env):
            continue                                          # an extra, or another platform's
        name = canonicalize_name(req.name)
        if name == "nltk" and w.name.startswith("rouge_score"):
            continue                                          # only rouge_score.rouge_scorer imports it
        have = carried.get(name) or IMAGE.get(name)
        if have is not None and not req.specifier.contains(str(have), prereleases=True):
            problems.append(f"{w.name}: needs {req}, gets {have}")
        elif have is None and name in IMAGE_UNRECORDED:
            assumed.add(f"{req}")
        elif have is None:
            problems.append(f"{w.name}: needs {req}, which neither .whl nor the image has")
tracked = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True).stdout
tracked_bytes = sum((repo / p).stat().st_size for p in tracked.decode().split("\0") if p and (repo / p).is_file())
total = sum(w.stat().st_size for w in wheels)
for w in wheels:
    print(f"{w.stat().st_size / 1e6:8.2f} MB  {w.name}")
print(f"{total / 1e6:8.2f} MB  in {len(wheels)} wheels; with the tracked files {(total + tracked_bytes) / 2**20:.1f} "
      f"of 64 MiB")
print("assumed met by the image (versions not recorded): " + ", ".join(sorted(assumed)))
if total + tracked_bytes > 64 * 2**20:
    problems.append("over the 64 MiB that travels")
if problems:
    sys.exit("\n".join(problems))
EOF

# Check: they install for Python 3.12 into an empty folder with no index, as on the GPU machine. With a
# Python 3.12 here (PYTHON312=/path/to/python3.12 names one) that is the real thing, and the carried
# modules whose needs are all carried or in the standard library import; else pip installs them for a
# 3.12 target it only describes.
target="$(mktemp -d)"
trap 'rm -rf "$target"' EXIT
py312="${PYTHON312:-python3.12}"
if "$py312" -m pip --version >/dev/null 2>&1; then
    "$py312" -m pip install --quiet --no-index --no-deps --no-compile --target "$target/site" "$dest"/*.whl
    PYTHONPATH="$target/site" "$py312" -c "import antlr4, dill, multiprocess, regex, fsspec"
    echo "installed with $("$py312" --version) into an empty --target without an index; pure imports ran"
else
    python3 -m pip install --quiet --no-index --no-deps --no-compile --only-binary=:all: --python-version 3.12 \
        --implementation cp "${PLATFORMS[@]/#/--platform=}" --target "$target/site" "$dest"/*.whl
    echo "installed for a described Python 3.12 (no python3.12 here) into an empty --target without an index"
fi
