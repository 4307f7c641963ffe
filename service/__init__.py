"""HTTP edge and storage of the alert service. See service/app.py for the factory."""
