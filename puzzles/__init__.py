"""The P3 puzzle format: records, parsing, canonical form, filters, seed puzzles, the P3 loader."""
