"""The participant partitioning shared by every per-participant asset."""

from __future__ import annotations

from dagster import BackfillPolicy, DynamicPartitionsDefinition

#: One partition per participant folder under ``landing/``; the sensor adds them.
participants_partitions = DynamicPartitionsDefinition(name="participants")

#: A backfill over many participants is one run, not one run per participant.
single_run_backfill = BackfillPolicy.single_run()
