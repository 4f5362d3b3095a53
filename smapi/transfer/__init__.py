"""Moving disk data in and out: the Transfer API service and the toolstack import/export formats."""
