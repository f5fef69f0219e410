"""The trigger form's JSON schemas agree with parse_spec: defaults pass, bad values fail in both."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from antdb_k8s.core.params import PARAM_SCHEMAS, param_defaults
from antdb_k8s.core.spec import DEFAULTS, SpecError, parse_spec

FORM_KEYS = ("section", "title", "description")
VALIDATORS = [jsonschema.Draft7Validator, jsonschema.Draft202012Validator]


def standard(schema: dict) -> dict:
    """The schema without the form-only keys Airflow's Param adds on top of JSON Schema."""
    return {k: v for k, v in schema.items() if k not in FORM_KEYS}


def schema_errors(key: str, value, validator=jsonschema.Draft7Validator) -> list[str]:
    return [e.message for e in validator(standard(PARAM_SCHEMAS[key])).iter_errors(value)]


def spec_problems(key: str, value) -> list[str]:
    try:
        parse_spec({key: value})
    except SpecError as err:
        return err.problems
    return []


def test_form_covers_every_conf_key():
    assert set(PARAM_SCHEMAS) == set(DEFAULTS)
    assert set(param_defaults()) == set(DEFAULTS)


@pytest.mark.parametrize("validator", VALIDATORS, ids=lambda v: v.__name__)
@pytest.mark.parametrize("key", sorted(PARAM_SCHEMAS))
def test_schema_is_valid_and_accepts_its_default(key, validator):
    schema = standard(PARAM_SCHEMAS[key])
    validator.check_schema(schema)
    assert list(validator(schema).iter_errors(param_defaults()[key])) == []


@pytest.mark.parametrize("key", sorted(PARAM_SCHEMAS))
def test_every_field_has_a_form_section_and_title(key):
    assert PARAM_SCHEMAS[key]["section"] and PARAM_SCHEMAS[key]["title"]
    assert PARAM_SCHEMAS[key]["description"]


def test_param_defaults_are_the_spec_defaults_as_independent_copies():
    first = param_defaults()
    assert first == DEFAULTS
    first["images"]["gc"]["tag"] = "mutated"
    first["pg_hba"].append("local all all trust")
    assert param_defaults() == DEFAULTS
    assert DEFAULTS["images"]["gc"]["tag"] == "21.0"


def _image(**changes) -> dict:
    images = copy.deepcopy(DEFAULTS["images"])
    images["gc"].update(changes)
    return images


# (key, value, the field parse_spec names): each must be refused by the form and by parse_spec.
BAD_VALUES = [
    ("coordinators", 0, "coordinators"),
    ("coordinators", 17, "coordinators"),
    ("coordinators", True, "coordinators"),
    ("coordinators", "2", "coordinators"),
    ("datanodes", 33, "datanodes"),
    ("datanodes", -1, "datanodes"),
    ("namespace", "PgoUser1", "namespace"),
    ("namespace", "pgo_user1", "namespace"),
    ("namespace", "a" * 64, "namespace"),
    ("images", _image(tag="21.0 beta"), "images.gc.tag"),
    ("images", _image(name="AntDB Cluster"), "images.gc.name"),
    ("images", _image(digest="sha256:0"), "images.gc.digest"),
    ("images", {**DEFAULTS["images"], "xx": {"name": "antdb.cluster.xx-ha", "tag": "21.0"}}, "images.xx"),
    ("image_prefix", "Crunchy Data", "image_prefix"),
    ("storage", {"dn": {"size": "10 GB"}}, "storage.dn.size"),
    ("storage", {"dn": {"size": "ten"}}, "storage.dn.size"),
    ("storage", {"gc": {"foo": "1"}}, "storage.gc.foo"),
    ("storage", {"dn": {"access_mode": "ReadOnlyMany"}}, "storage.dn.access_mode"),
    ("storage", {"dn": {"access_mode": "ReadWriteOncePod"}}, "storage.dn.access_mode"),
    ("pg_hba", [], "pg_hba"),
    ("pg_hba", [7], "pg_hba[0]"),
    ("postgres_parameters", ["work_mem=4MB"], "postgres_parameters"),
    ("operator", {"namespace": "pgo", "install": False, "installation_name": "devtest", "bar": 1}, "operator.bar"),
    ("operator", {"namespace": "PGO", "install": False, "installation_name": "devtest"}, "operator.namespace"),
    ("operator", {"namespace": "pgo", "install": "no", "installation_name": "devtest"}, "operator.install"),
    ("timeouts", {"gc_ready": 900, "nodes_ready": 1800, "poke_interval": 10, "baz": 1}, "timeouts.baz"),
    ("timeouts", {"gc_ready": 5, "nodes_ready": 1800, "poke_interval": 10}, "timeouts.gc_ready"),
    ("timeouts", {"gc_ready": 900, "nodes_ready": 1800, "poke_interval": 301}, "timeouts.poke_interval"),
    ("prepare_hosts", "yes", "prepare_hosts"),
    ("dry_run", "false", "dry_run"),
]


@pytest.mark.parametrize(("key", "value", "field"), BAD_VALUES,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_VALUES)])
def test_bad_value_is_refused_by_form_and_parse_spec(key, value, field):
    assert schema_errors(key, value), f"the form accepts {key}={value!r}"
    assert any(p.startswith(f"{field}:") for p in spec_problems(key, value))


# Values a user may send for one key (Airflow replaces a param's whole value with the conf's):
# parse_spec deep-merges them over the defaults, so the form must not demand the rest.
GOOD_VALUES = [
    ("images", {"gc": {"tag": "22.0"}}),
    ("images", {"dn": {"name": "antdb.cluster.db-ha"}}),
    ("storage", {"dn": {"size": "500Gi", "storage_class": "fast"}}),  # README's example
    ("storage", {"dn": {"host_path": "/data/antdb"}}),
    ("timeouts", {"gc_ready": 60}),
    ("operator", {"install": True}),
    ("postgres_parameters", {"work_mem": "64MB", "max_prepared_transactions": 2000}),
    ("pg_hba", ["local all all peer", "host all all 127.0.0.0/8 scram-sha-256"]),
    ("coordinators", 16),
    ("datanodes", 1),
    ("namespace", "antdb-prod"),
]


@pytest.mark.parametrize(("key", "value"), GOOD_VALUES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(GOOD_VALUES)])
def test_partial_value_is_accepted_by_form_and_parse_spec(key, value):
    assert schema_errors(key, value) == []
    assert spec_problems(key, value) == []
