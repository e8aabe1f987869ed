"""Content moderation with the family's safety classifiers: ``/v1/moderations`` and the guard."""
