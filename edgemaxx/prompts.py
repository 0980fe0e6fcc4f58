"""A prompt space nobody can enumerate, from which every validator derives the same prompts.

A prompt is a subject (article, one or two adjectives, a noun, maybe a material), maybe an action
with an object, a setting, lighting, maybe weather, a style, maybe a camera, a palette and up to
two details: comma-separated like real text-to-image prompts, 10 to about 60 words (well inside
CLIP's 77 tokens and T5's 256). `space_size()` counts the distinct slot assignments: about 10^22,
so no miner can precompute text embeddings for the space (SN39's public 1600-prompt corpus could
be: 3.4 GB of T5 outputs, shipped as a "model").

Every choice comes from sha256 of (seed, prompt index, slot), never `random` or `hash()`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable

ARTICLES = ("a", "the", "one", "this", "that", "a single", "a lone", "a proud", "our")


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split("|") if w.strip())


NOUNS = _words("""
red fox|snow leopard|barn owl|humpback whale|koi fish|hummingbird|sea turtle|arctic hare|grey wolf|
raccoon|hedgehog|octopus|jellyfish|peacock|flamingo|tortoise|chameleon|lynx|bison|moose|otter|beaver|
badger|heron|kingfisher|crow|raven|swan|pelican|stag|mountain goat|camel|elephant|giraffe|zebra|tiger|
lion|cheetah|panda|red panda|koala|kangaroo|sloth|orangutan|gorilla|lemur|polar bear|walrus|seal|penguin|
dolphin|manta ray|seahorse|crab|lobster|snail|beetle|dragonfly|butterfly|moth|honeybee|ladybug|spider|
scorpion|frog|salamander|iguana|komodo dragon|cobra|rooster|goose|donkey|horse|pony|sheepdog|tabby cat|
black cat|dachshund|corgi|greyhound|husky|parrot|toucan|vulture|eagle|falcon|lighthouse|windmill|
water tower|clock tower|cathedral|pagoda|castle|treehouse|cabin|farmhouse|greenhouse|observatory|
library|bookshop|bakery|tea house|train station|lantern|teapot|violin|cello|grand piano|typewriter|
gramophone|pocket watch|compass|telescope|hourglass|chess set|globe|birdcage|music box|kite|
hot air balloon|sailboat|fishing boat|steam locomotive|city tram|vintage bicycle|motorcycle|
vintage car|double-decker bus|submarine|airship|biplane|rocket|space station|rover|robot|android|
mech suit|diver|astronaut|knight|samurai|wizard|witch|blacksmith|gardener|fisherman|baker|chef|
street musician|dancer|skateboarder|mountaineer|beekeeper|cartographer|clockmaker|potter|painter|
librarian|monk|pilgrim|shepherd|queen|king|jester|pirate captain|explorer|detective|scientist|
bowl of ramen|stack of pancakes|basket of apples|loaf of bread|wedge of cheese|cup of coffee|
bowl of cherries|birthday cake|pumpkin|sunflower|bonsai tree|cactus|fern|oak tree|willow tree|
cherry tree|mushroom|water lily|orchid|rose|tulip field|vineyard|waterfall|volcano|glacier|canyon|
coral reef|sand dune|iceberg|geyser|mountain lake|river delta|bamboo forest|rice terrace|
stone bridge|covered bridge|lighthouse keeper|chandelier|stained glass window|mosaic|fountain|
statue|totem|sundial|weather vane|scarecrow|snowman|campfire|paper boat|origami crane|crystal|
geode|meteorite|seashell|feather|skull|crown|sword|shield|helmet|spinning wheel|loom|anvil|
""")
ADJECTIVES = _words("""
ancient|weathered|gleaming|tiny|enormous|graceful|sleepy|curious|majestic|mischievous|solemn|
cheerful|lonely|proud|fierce|gentle|battered|polished|rusty|overgrown|crumbling|floating|glowing|
translucent|iridescent|shimmering|velvet|woolly|feathered|spotted|striped|speckled|frosted|
sunlit|moonlit|shadowy|misty|dusty|muddy|rain-soaked|snow-covered|moss-covered|ivy-clad|
golden|silver|copper|crimson|scarlet|amber|emerald|jade|turquoise|cobalt|indigo|violet|
lavender|ivory|ebony|charcoal|pastel|neon|sepia|monochrome|colorful|vibrant|muted|faded|
patchwork|hand-painted|carved|embroidered|knitted|woven|porcelain|marble|wooden|glass|paper|
clockwork|mechanical|steam-powered|solar-powered|futuristic|retro|victorian|medieval|baroque|
art deco|minimalist|ornate|rustic|whimsical|surreal|dreamlike|ghostly|celestial|volcanic|
tropical|arctic|desert|aquatic|alpine|urban|rural|nomadic|regal|humble|tattered|pristine|
miniature|colossal|elegant|clumsy|playful|stoic|wise|young|elderly|newborn|wild|tame|
heroic|wandering|dancing|singing|dreaming|watchful|hidden|forgotten|legendary|mythical|
enchanted|cursed|haunted|sacred|electric|magnetic|crystalline|molten|frozen|blooming|wilted|
""")
MATERIALS = _words("""
made of glass|made of paper|made of brass|made of ice|made of clouds|made of moss|made of lace|
made of porcelain|made of driftwood|made of copper wire|made of stained glass|made of chocolate|
made of autumn leaves|made of light|made of smoke|made of sand|made of origami|made of wool|
made of marble|made of gold leaf|made of bioluminescent fungi|made of circuit boards|made of coral|
made of obsidian|made of candy|made of feathers|made of flowers|made of rope|made of jade|made of bone|
""")
ACTIONS = _words("""
reading|guarding|chasing|carrying|balancing on|sleeping beside|hiding behind|dancing around|
climbing|repairing|painting|watching|feeding|riding|juggling|building|sailing past|flying over|
swimming under|peeking out of|sitting on|standing atop|leaning against|tangled in|emerging from|
surrounded by|reflected in|half buried in|drifting toward|wrapped around|looking at|playing with|
racing|waiting for|walking past|holding|catching|drawing|singing to|listening to|gazing at|
floating above|resting inside|perched on|stepping out of|crossing|exploring|tending|polishing|
""")
OBJECTS = _words("""
an old map|a lantern|a pile of books|a paper kite|a broken clock|a wooden boat|a glass jar of fireflies|
a bouquet of wildflowers|a tea cup|a treasure chest|a street lamp|a music box|a golden key|a mirror|
a spiral staircase|a garden gate|a hot cup of cocoa|a crystal ball|a stack of letters|a red umbrella|
a tiny planet|a giant moon|a swarm of fireflies|a flock of paper birds|a waterfall|a rainbow|a storm cloud|
a snow globe|a candle|a chessboard|a bicycle|a suitcase|a birdhouse|a fishing net|a telescope|a violin|
a basket of fruit|a rope bridge|a sleeping dragon|a marble statue|a crumbling wall|a neon sign|a vending machine|
a mailbox|a picnic blanket|a sandcastle|a hammock|a tree stump|a row of lanterns|a door in the air|
""")
SETTINGS = _words("""
in a misty forest|on a foggy harbor|in a neon-lit alley|on a frozen lake|in a sunflower field|
in a busy night market|beside a waterfall|in an empty ballroom|on a rooftop garden|in a desert oasis|
on a snowy mountain pass|in a flooded cathedral|in an abandoned subway station|on a floating island|
inside a giant seashell|at the bottom of the sea|on the surface of the moon|inside a snow globe|
in a candlelit library|in a cluttered workshop|in a victorian greenhouse|in a bamboo forest|
on a windswept cliff|in a lavender field|at a rainy bus stop|in a sunlit kitchen|in a cozy attic|
on a crowded train platform|in a quiet monastery|in a medieval village square|on a tropical beach|
in a mangrove swamp|in a glowing cave|in an ice palace|on a battlefield at dawn|in a zen garden|
on a dusty country road|in a tulip garden|in a cyberpunk megacity|on an alien planet|in a coral garden|
at the edge of a canyon|in a field of wheat|in a maple forest in autumn|in a rice paddy|
on a rope bridge over a gorge|in a hidden valley|in a ruined temple|in a clockwork city|in a cloud kingdom|
on a houseboat|in a cramped apartment|in a grand museum hall|in a botanical garden|in an old cinema|
on a racetrack|in a lighthouse lantern room|under a cherry blossom tree|in a moonlit courtyard|
on a ship deck in a storm|in a farmers market|in a mountain hut|in a glass dome on mars|
in a snowy pine forest|in a carnival at night|on a lily pond|on a cobblestone street|in a tea garden|
in a desert canyon|in a spice bazaar|in a train carriage|in a foggy graveyard|on a balcony in venice|
in a crystal cavern|in a vineyard at harvest|in a space station corridor|in a sunken ship|on a glacier|
in a scrapyard|in a jazz club|in a children's bedroom|in a palace garden|on a highway at dusk|
in a tundra|on a savanna|in a rainforest canopy|beside a volcano|on an iceberg|in a salt flat|
""")
LIGHTING = _words("""
at golden hour|at blue hour|at sunrise|at sunset|at midnight|at high noon|under a starry sky|
under the northern lights|under a full moon|in soft morning light|in harsh midday sun|by candlelight|
by lantern light|by firelight|in neon light|under stage lights|in dappled sunlight|backlit by the sun|
in volumetric god rays|in rim lighting|in chiaroscuro lighting|in studio lighting|in overcast light|
in twilight|under a crescent moon|lit by fireflies|lit by bioluminescence|under a stormy sky|
in warm tungsten light|in cold fluorescent light|in cinematic lighting|in soft diffused light|
in dramatic side lighting|under a rainbow|during an eclipse|under fireworks|lit by a single spotlight|
""")
WEATHER = _words("""
in heavy rain|in light drizzle|in falling snow|in a blizzard|in thick fog|in a sandstorm|on a windy day|
after the rain|with autumn leaves falling|with cherry petals drifting|in a thunderstorm|in the haze of summer|
with mist rising|under drifting clouds|in frost|during a heatwave|with steam rising|in a gentle breeze|
""")
STYLES = _words("""
photorealistic|hyperrealistic|cinematic still|35mm film photograph|polaroid photo|
studio photograph|documentary photograph|macro photograph|long exposure photograph|
watercolor painting|oil painting|impasto oil painting|gouache illustration|acrylic painting|
charcoal sketch|pencil drawing|ink wash painting|ukiyo-e woodblock print|linocut print|
etching|pastel drawing|colored pencil drawing|children's book illustration|storybook illustration|
concept art|matte painting|digital painting|isometric 3D render|low poly 3D render|
claymation still|stop motion still|pixel art|8-bit sprite art|vector illustration|flat illustration|
art nouveau poster|art deco poster|vintage travel poster|propaganda poster style|
comic book panel|manga panel|anime key visual|studio ghibli style|pop art|
surrealist painting|cubist painting|impressionist painting|pointillism|expressionist painting|
baroque painting|renaissance fresco|byzantine mosaic|stained glass art|tapestry|
embroidery|papercut art|origami diorama|miniature diorama|tilt-shift photograph|
infrared photograph|double exposure|cyanotype|daguerreotype|tintype photograph|
blueprint|technical drawing|botanical illustration|scientific illustration|
graffiti mural|chalk drawing on pavement|neon sign art|synthwave artwork|vaporwave artwork|
steampunk illustration|cyberpunk illustration|dark fantasy art|high fantasy art|
renaissance portrait|film noir still|western movie still|nature documentary still|
""")
CAMERA = _words("""
close-up|extreme close-up|wide angle|ultra wide shot|aerial view|bird's eye view|worm's eye view|
low angle|high angle|dutch angle|over the shoulder|symmetrical composition|rule of thirds|
centered composition|shallow depth of field|deep focus|bokeh background|motion blur|
85mm lens|50mm lens|24mm lens|fisheye lens|telephoto lens|panoramic view|top-down view|
silhouette|reflection shot|framed through a window|framed by branches|portrait orientation|
""")
PALETTES = _words("""
warm autumn palette|cool blue palette|pastel palette|earth tones|black and white|sepia tones|
teal and orange|complementary colors|muted colors|vivid saturated colors|neon colors|jewel tones|
monochrome green|golden tones|candy colors|desaturated colors|high contrast|low contrast|
soft gradients|limited palette of three colors|
""")
DETAILS = _words("""
intricate details|highly detailed|fine textures|visible brush strokes|film grain|soft focus|
volumetric fog|lens flare|sharp focus|dramatic shadows|subtle reflections|dust motes in the air|
glowing particles|floating embers|sparkles|light leaks|vignette|ray traced reflections|
wet surfaces|crisp edges|delicate linework|thick outlines|paper texture|canvas texture|
award-winning|trending on an art forum|masterpiece|national geographic quality|museum quality|
peaceful mood|melancholic mood|joyful mood|mysterious atmosphere|epic scale|cozy atmosphere|
tense atmosphere|nostalgic feeling|dreamy atmosphere|whimsical atmosphere|eerie silence|
""")

# (slot name, vocabulary, optional): the order of the prompt's comma-separated parts.
SLOTS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("article", ARTICLES, False),
    ("adjective", ADJECTIVES, False),
    ("second_adjective", ADJECTIVES, True),
    ("noun", NOUNS, False),
    ("material", MATERIALS, True),
    ("action", ACTIONS, True),
    ("object", OBJECTS, False),  # only with an action
    ("setting", SETTINGS, False),
    ("lighting", LIGHTING, False),
    ("weather", WEATHER, True),
    ("style", STYLES, False),
    ("camera", CAMERA, True),
    ("palette", PALETTES, True),
    ("detail", DETAILS, True),
    ("second_detail", DETAILS, True),
)


def space_size() -> int:
    """Distinct slot assignments: each optional slot may also be absent (an action brings an object)."""
    size = 1
    for name, vocabulary, optional in SLOTS:
        if name == "action":
            size *= 1 + len(ACTIONS) * len(OBJECTS)
        elif name != "object":
            size *= len(vocabulary) + (1 if optional else 0)
    return size


def _picker(seed: str, index: int, attempt: int) -> Callable[[str, int], int]:
    def pick(slot: str, choices: int) -> int:
        digest = hashlib.sha256(f"{seed}\x00prompt\x00{index}\x00{attempt}\x00{slot}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % choices

    return pick


def _present(pick: Callable[[str, int], int], slot: str, one_in: int) -> bool:
    """Optional slots are present in roughly (one_in - 1) / one_in of prompts."""
    return pick(f"{slot}?", one_in) != 0


def generate(seed: str, index: int, attempt: int = 0) -> str:
    """The `index`-th prompt for `seed` (`attempt` re-draws it when a run already has that prompt)."""
    pick = _picker(seed, index, attempt)

    def choose(slot: str, vocabulary: tuple[str, ...]) -> str:
        return vocabulary[pick(slot, len(vocabulary))]

    adjectives = [choose("adjective", ADJECTIVES)]
    if _present(pick, "second_adjective", 3):
        second = choose("second_adjective", ADJECTIVES)
        if second != adjectives[0]:
            adjectives.append(second)
    article = choose("article", ARTICLES)
    if article == "a" and adjectives[0][0] in "aeiou":
        article = "an"
    subject = " ".join([article, ", ".join(adjectives), choose("noun", NOUNS)])
    if _present(pick, "material", 4):
        subject += " " + choose("material", MATERIALS)
    if _present(pick, "action", 2):
        subject += f" {choose('action', ACTIONS)} {choose('object', OBJECTS)}"
    parts = [subject, choose("setting", SETTINGS), choose("lighting", LIGHTING)]
    if _present(pick, "weather", 3):
        parts.append(choose("weather", WEATHER))
    parts.append(choose("style", STYLES))
    for slot, vocabulary, one_in in (("camera", CAMERA, 2), ("palette", PALETTES, 3), ("detail", DETAILS, 2)):
        if _present(pick, slot, one_in):
            parts.append(choose(slot, vocabulary))
    if _present(pick, "second_detail", 3):
        detail = choose("second_detail", DETAILS)
        if detail not in parts:
            parts.append(detail)
    return ", ".join(parts)


def describe_space() -> str:
    size = space_size()
    return f"{size:.3e} prompts (10^{math.log10(size):.1f})"
