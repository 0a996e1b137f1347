"""Expands a SAM template into plain CloudFormation (what `sam deploy` would send), so
cfn-lint can check the generated resources too. Offline: no AWS call is made."""
import json
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class OfflinePolicies(ManagedPolicyLoader):
    """Managed policy ARNs without asking IAM (the template uses none by name)."""

    def __init__(self):
        pass

    def load(self):
        return {}


def package_locally(template):
    """`sam package` replaces local CodeUri with the S3 location it uploaded to; do the
    same with placeholders, since the translator accepts only S3 locations."""
    for name, resource in template.get("Resources", {}).items():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = f"s3://inlet-packaged-code/{name}.zip"


def main(source, target):
    with open(source) as f:
        template = yaml_parse(f.read())
    package_locally(template)
    try:
        expanded = transform(template, {}, OfflinePolicies(), Parser())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{source}: {cause.message}", file=sys.stderr)
        sys.exit(1)
    with open(target, "w") as f:
        json.dump(expanded, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
