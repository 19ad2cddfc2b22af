from telmi.labels import LABELS, label
from telmi.models import ActType, BookingStatus, FacilityCategory, Role


def test_every_vocabulary_value_has_a_french_label() -> None:
    for vocabulary in (Role, FacilityCategory, ActType, BookingStatus):
        for value in vocabulary:
            assert value in LABELS, value
    assert label(ActType.TELEEXPERTISE) == "Téléexpertise"
