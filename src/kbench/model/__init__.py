"""Model definitions: specs, seeded weights, the .keras reader, the automatic NumPy twin, export, scaffolding."""
