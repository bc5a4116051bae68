"""The benefits engine against DOMAIN §5, with exact expected sets."""

from datetime import datetime, timedelta

from benefits.engine import BenefitSpec, HeldTier, TierMappingSpec, campaign_benefits, tier_benefits

NOW = datetime.fromisoformat("2026-03-01T10:00:00+07:00")
HOTEL, CARD = 1, 2
# Hotel ladder: member 11 (1) < silver 12 (2) < gold 13 (3) < platinum 14 (4); card: classic 21 < premier 22.
TIERS = {
    11: (HOTEL, 1, "member"),
    12: (HOTEL, 2, "silver"),
    13: (HOTEL, 3, "gold"),
    14: (HOTEL, 4, "platinum"),
    21: (CARD, 1, "classic"),
    22: (CARD, 2, "premier"),
}


def held(*tier_ids: int, priorities: dict[int, int] | None = None) -> list[HeldTier]:
    return [
        HeldTier(t, TIERS[t][0], TIERS[t][1], TIERS[t][2], (priorities or {}).get(TIERS[t][0], 0)) for t in tier_ids
    ]


def mapping(tier_id: int, benefit_id: int, inheritable: bool = True) -> TierMappingSpec:
    return TierMappingSpec(tier_id, TIERS[tier_id][0], TIERS[tier_id][1], benefit_id, inheritable, TIERS[tier_id][2])


def benefit(benefit_id: int, code: str, **fields) -> BenefitSpec:
    return BenefitSpec(id=benefit_id, code=code, **fields)


def result(catalog, mappings, tiers, **kw):
    got = tier_benefits(catalog={b.id: b for b in catalog}, mappings=mappings, held=tiers, now=NOW, **kw)
    return {catalog_b.code: got[catalog_b.id].source_ref for catalog_b in catalog if catalog_b.id in got}


LATE = benefit(1, "late-checkout")
LOUNGE = benefit(2, "lounge")
WIFI = benefit(3, "wifi")


def test_inheritance_up_the_ladder():
    mappings = [mapping(13, 1), mapping(14, 2), mapping(12, 3, inheritable=False)]
    catalog = [LATE, LOUNGE, WIFI]
    assert result(catalog, mappings, held(12)) == {"wifi": "silver"}
    assert result(catalog, mappings, held(13)) == {"late-checkout": "gold"}  # wifi is not inherited
    assert result(catalog, mappings, held(14)) == {"late-checkout": "gold", "lounge": "platinum"}
    assert result(catalog, mappings, held(11)) == {}


def test_tiers_of_two_tier_types_add_up():
    mappings = [mapping(13, 1), mapping(22, 3)]
    assert result([LATE, WIFI], mappings, held(13, 22)) == {"late-checkout": "gold", "wifi": "premier"}


def test_exclusive_group_across_tier_types_by_priority():
    suite = benefit(4, "suite-upgrade", exclusive_group="upgrade", priority=10)
    room = benefit(5, "room-upgrade", exclusive_group="upgrade", priority=5)
    twin = benefit(6, "card-upgrade", exclusive_group="upgrade", priority=10)
    mappings = [mapping(13, 4), mapping(12, 5), mapping(22, 6)]
    # suite (10) and card (10) tie on priority: the tier type with the higher priority wins.
    assert result([suite, room, twin], mappings, held(13, 22, priorities={HOTEL: 1, CARD: 0})) == {
        "suite-upgrade": "gold"
    }
    assert result([suite, room, twin], mappings, held(13, 22, priorities={HOTEL: 0, CARD: 1})) == {
        "card-upgrade": "premier"
    }
    assert result([suite, room, twin], mappings, held(12)) == {"room-upgrade": "silver"}


def test_bundles_expand_to_their_components():
    voucher_a, voucher_b = benefit(7, "voucher-a"), benefit(8, "voucher-b")
    pack = benefit(9, "voucher-pack", component_ids=(7, 8))
    got = tier_benefits(
        catalog={b.id: b for b in (voucher_a, voucher_b, pack)}, mappings=[mapping(13, 9)], held=held(13), now=NOW
    )
    assert {b: (e.source_ref, e.via) for b, e in got.items()} == {
        7: ("gold", ("voucher-pack",)),
        8: ("gold", ("voucher-pack",)),
    }


def test_a_bundle_cycle_is_cut():
    a = benefit(10, "a", component_ids=(11,))
    b = benefit(11, "b", component_ids=(10, 12))
    c = benefit(12, "c")
    got = tier_benefits(catalog={x.id: x for x in (a, b, c)}, mappings=[mapping(13, 10)], held=held(13), now=NOW)
    assert set(got) == {12}


def test_templates_inactive_and_out_of_window_are_never_granted():
    catalog = [
        benefit(1, "template", is_template=True),
        benefit(2, "inactive", active=False),
        benefit(3, "not-yet", valid_from=NOW + timedelta(days=1)),
        benefit(4, "over", valid_until=NOW),
        benefit(5, "ok", valid_until=NOW + timedelta(seconds=1)),
    ]
    mappings = [mapping(13, i) for i in range(1, 6)]
    assert result(catalog, mappings, held(13)) == {"ok": "gold"}


def test_conditional_benefits_need_their_criteria():
    vip = benefit(
        1, "vip-desk", lifetime="conditional", criteria=({"metric": "attribute:vip", "operator": "eq", "value": True},)
    )
    assert result([vip], [mapping(13, 1)], held(13), criteria_hold=lambda c: True) == {"vip-desk": "gold"}
    assert result([vip], [mapping(13, 1)], held(13), criteria_hold=lambda c: False) == {}


def test_campaign_benefits():
    drink = benefit(1, "welcome-drink")
    spa = benefit(2, "spa", lifetime="conditional", criteria=("x",))
    got = campaign_benefits(
        catalog={1: drink, 2: spa},
        mappings=[(1, ()), (2, ())],
        campaign_code="SONGKRAN",
        now=NOW,
        criteria_hold=lambda c: c != ("x",),
    )
    assert {b: e.source_ref for b, e in got.items()} == {1: "SONGKRAN"}
