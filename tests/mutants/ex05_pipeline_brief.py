from splatcourse.grading.harness import Mutant

MUTANTS = [
    # scene photos sent through multi-view diffusion: the photos already are the views
    Mutant(
        "photos-as-diffusion",
        "recommend",
        'pipeline = "photo reconstruction"',
        'pipeline = "multi-view diffusion + fit"',
        # the document built from it no longer names reconstruction either
        fails={"test_recommend_visible", "test_pipeline_hidden", "test_skill_doc"},
    ),
    # a game mesh from a PBR generator loses its metallic map: the engine cannot light it right
    Mutant(
        "no-metallic",
        "recommend",
        'materials = ["albedo", "roughness", "metallic", "normal"]',
        'materials = ["albedo", "roughness", "normal"]',
        fails={"test_recommend_visible", "test_assets_hidden"},
    ),
    # PBR channels promised for a splat, which only stores baked radiance
    Mutant(
        "pbr-splat",
        "recommend",
        'materials = ["spherical-harmonic colour", "opacity"]',
        'materials = ["albedo", "roughness", "metallic", "normal"]',
        fails={"test_recommend_visible", "test_assets_hidden"},
    ),
    # a model whose licence limits commercial use, recommended without saying so
    Mutant(
        "licence-unchecked",
        "recommend",
        '"SV3D: Stability AI community licence, commercial below US$1M revenue"',
        '"SV3D: Stability AI licence"',
        fails={"test_recommend_visible", "test_assets_hidden"},
    ),
    # unknown values slip through validation
    Mutant(
        "no-value-check",
        "validate",
        "if value not in allowed:",
        "if False:",
        fails={"test_validate"},
    ),
    # the document lists only one use per (input, output)
    Mutant(
        "short-doc", "doc", "for use in USES:", "for use in USES[:1]:", fails={"test_skill_doc"}
    ),
    # honest: other names for two pipeline families, which the rubric (pipelines.normalise_pipeline)
    # accepts everywhere, the skill document included
    Mutant(
        "honest-synonyms",
        "recommend",
        'pipeline = "photo reconstruction"',
        'pipeline = "photogrammetry"',
        fails=set(),
    ),
    Mutant(
        "honest-feed-forward",
        "recommend",
        '"direct mesh model", "TRELLIS.2"',
        '"feed-forward image-to-mesh", "TRELLIS.2"',
        fails=set(),
    ),
    # honest: a log line on stderr each time the tests call it
    Mutant(
        "honest-logging",
        "recommend",
        "    b = validate_brief(brief)\n",
        "    import logging\n\n"
        "    b = validate_brief(brief)\n"
        '    logging.warning("recommending for %s", b)\n',
        fails=set(),
    ),
]
