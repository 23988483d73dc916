"""Schema Registry: in shadow, serializers look schemas up and never register them.

Serializers with ``auto.register.schemas=True`` register their schema on first use. In
shadow, ``register_schema`` (of the sync and the asyncio client) only looks the schema up:
an already registered schema gives the real id, so shadow messages are framed as primary
ones; an unknown one is refused, recorded, with the way out in the message.
"""

from __future__ import annotations

from typing import Any

from shadowguard.contract import PROCESS, Kind, Patches, record, refuse, scope_now

__all__ = ["guard_schema_registration"]

_REMEDY = (
    "Register the schema from primary traffic or a deployment step first "
    "(shadow traffic only looks schemas up), or serialize with auto.register.schemas=False"
)


def guard_schema_registration(patches: Patches) -> None:
    """Patch both Schema Registry clients, if the ``schemaregistry`` extra is installed."""
    try:
        from confluent_kafka.schema_registry import (
            AsyncSchemaRegistryClient,
            SchemaRegistryClient,
        )
        from confluent_kafka.schema_registry.error import SchemaRegistryError
    except ImportError:  # the schemaregistry extra of confluent-kafka is not installed
        return
    register = SchemaRegistryClient.register_schema_full_response
    aregister = AsyncSchemaRegistryClient.register_schema_full_response
    target = "SchemaRegistryClient.register_schema"
    atarget = "AsyncSchemaRegistryClient.register_schema"

    def register_schema_full_response(
        self: Any, subject_name: str, schema: Any, normalize_schemas: bool = False
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return register(self, subject_name, schema, normalize_schemas)
        try:
            found = self.lookup_schema(subject_name, schema, normalize_schemas=normalize_schemas)
        except SchemaRegistryError as exc:
            _refuse_unregistered(target, subject_name, exc)
            raise
        record(Kind.CALL, target, "register_schema", {"subject": subject_name})
        return found

    async def aregister_schema_full_response(
        self: Any, subject_name: str, schema: Any, normalize_schemas: bool = False
    ) -> Any:
        if scope_now() is None and not PROCESS.shadow:
            return await aregister(self, subject_name, schema, normalize_schemas)
        try:
            found = await self.lookup_schema(
                subject_name, schema, normalize_schemas=normalize_schemas
            )
        except SchemaRegistryError as exc:
            _refuse_unregistered(atarget, subject_name, exc)
            raise
        record(Kind.CALL, atarget, "register_schema", {"subject": subject_name})
        return found

    patches.setattr(
        SchemaRegistryClient, "register_schema_full_response", register_schema_full_response
    )
    patches.setattr(
        AsyncSchemaRegistryClient, "register_schema_full_response", aregister_schema_full_response
    )


def _refuse_unregistered(target: str, subject: str, error: Any) -> None:
    """Refuse a schema the registry does not know; record any other lookup error.

    Either way the attempt to register is recorded once.
    """
    if error.http_status_code == 404:
        raise refuse(
            Kind.CALL,
            target,
            "register_schema",
            f"registering a new schema under subject {subject!r} in the Schema Registry",
            remedy=_REMEDY,
            detail={"subject": subject},
        ) from error
    record(Kind.CALL, target, "register_schema", {"subject": subject}, error=error)
