"""The instruments of the broker's daily dump, searchable by prefix and by similarity (pg_trgm),
seeded with the shipped list so that a fresh install can search before its first refresh."""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations, models
from django.utils import timezone

from brokers.instruments import instruments_store, load_instruments


def seed(apps, schema_editor):
    model = apps.get_model("brokers", "Instrument")
    for exchange in sorted({i.exchange for i in load_instruments()}):
        instruments_store(model, exchange=exchange, instruments=load_instruments(), refreshed_at=timezone.now())


def unseed(apps, schema_editor):
    apps.get_model("brokers", "Instrument").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("brokers", "0003_deleted_at"),
    ]

    operations = [
        TrigramExtension(),
        migrations.CreateModel(
            name="Instrument",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("instrument_token", models.BigIntegerField(unique=True)),
                ("exchange_token", models.BigIntegerField()),
                ("exchange", models.CharField(max_length=10)),
                ("symbol", models.CharField(help_text="Kite's tradingsymbol.", max_length=40)),
                ("name", models.CharField(blank=True, max_length=120)),
                ("segment", models.CharField(max_length=16)),
                ("instrument_type", models.CharField(max_length=8)),
                ("tick_size", models.DecimalField(decimal_places=4, max_digits=12)),
                ("lot_size", models.PositiveIntegerField()),
                ("last_price", models.DecimalField(blank=True, decimal_places=4, max_digits=14, null=True)),
                ("refreshed_at", models.DateTimeField()),
            ],
            options={
                "ordering": ["exchange", "symbol"],
                "indexes": [
                    models.Index(
                        fields=["symbol"], name="instrument_symbol_prefix", opclasses=["varchar_pattern_ops"]
                    ),
                    models.Index(fields=["name"], name="instrument_name_prefix", opclasses=["varchar_pattern_ops"]),
                    django.contrib.postgres.indexes.GistIndex(
                        fields=["symbol"], name="instrument_symbol_trgm", opclasses=["gist_trgm_ops(siglen=256)"]
                    ),
                    django.contrib.postgres.indexes.GistIndex(
                        fields=["name"], name="instrument_name_trgm", opclasses=["gist_trgm_ops(siglen=256)"]
                    ),
                ],
            },
        ),
        migrations.RunPython(seed, unseed),
    ]
