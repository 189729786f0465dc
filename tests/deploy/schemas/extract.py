"""Write the openAPIV3Schema of a CRD's storage version as the JSON file tests/deploy reads.

    python tests/deploy/schemas/extract.py CRD.yaml [CRD.yaml ...]

Each CRD manifest comes from its project's repository at the tag named in tests/deploy/kuberay_rules.py
(VERSIONS); the output file is ``<kind>-<group>-<version>.json`` next to this script, the schema unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent


def extract(crd: dict) -> tuple[str, dict]:
    spec = crd["spec"]
    (version,) = [v for v in spec["versions"] if v.get("storage")]
    name = f"{spec['names']['kind'].lower()}-{spec['group']}-{version['name']}.json"
    return name, version["schema"]["openAPIV3Schema"]


def main(paths: list[str]) -> None:
    for path in paths:
        for doc in yaml.safe_load_all(Path(path).read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                name, schema = extract(doc)
                (HERE / name).write_text(json.dumps(schema, separators=(",", ":"), sort_keys=True) + "\n")
                print(name)


if __name__ == "__main__":
    main(sys.argv[1:])
