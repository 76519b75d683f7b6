# Merge of the two directory 0002 migrations of the trust and webhooks branches (made on the
# sdk branch only so its tests can migrate; the lead may replace it with their own merge).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("directory", "0002_challenge"),
        ("directory", "0002_endpoints_deliveries"),
    ]

    operations: list = []
