"""Seeds the market calendar (see strategies.calendar_seed)."""

from django.db import migrations

from strategies.calendar_seed import seed_market_calendar


def seed(apps, schema_editor):
    seed_market_calendar(apps.get_model("strategies", "MarketSession"), apps.get_model("strategies", "MarketHoliday"))


def unseed(apps, schema_editor):
    apps.get_model("strategies", "MarketHoliday").objects.filter(date__year=2026).delete()
    apps.get_model("strategies", "MarketSession").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("strategies", "0001_market_calendar")]

    operations = [migrations.RunPython(seed, unseed)]
