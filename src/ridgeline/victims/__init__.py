"""The victim-identification registry: series, victims, sightings, the interchange.

Only coarse attributes are kept (age band, gender, region): never names or images.
Records from several databases are merged into one victim by shared hashes and
`same_as` links (see docs/indicator.md); the indicator reads the merged victims.
"""
