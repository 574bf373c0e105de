"""Realistic synthetic sampled-stream lines and raw minute-file trees, deterministic from a seed.

Tests, the demo, the stream emulator and the benchmark all need stream data that looks like
what X sends (see ``../shared/fixtures/twitter-v2/sample-stream-lines.jsonl``): multilingual
text with emoji, mentions, hashtags and URLs; line breaks of every kind and quotes/commas in
text, names and locations; ~45 % retweets; snowflake IDs that encode ``created_at``; a pool
of recurring authors; occasionally a missing author. Only the stdlib and orjson are used, and
the hot path avoids per-line heavy work (pools are precomputed), because the benchmark writes
hundreds of thousands of lines and its 10 % scale millions.

Public API
- ``TweetFactory(seed).make(created_at)`` / ``.make_ms(ms)``: one stream line as a dict
  (read-only: it shares pooled parts with other lines); ``.last_id``: its ID as an int.
- ``stream_line(tweet, retrieved_at)``: the bytes the collector writes (line + ``__twarc``);
  ``wire_line(tweet)``: the bytes X sends (CRLF-terminated).
- ``generate_raw_tree(servers, start, end, tz, ...) -> GenerationSummary``: minute files for
  several servers; the summary has per-server counts, ID sets and ``ids_by_hour(tz)``.
- ``snowflake_id`` / ``snowflake_ms`` / ``snowflake_time``: the ID <-> time relation.
- ``BAD_LINE_KINDS``, ``OPERATIONAL_DISCONNECT``: the bad lines a raw file can hold.
- CLI: ``python -m ingest.devtools.generate --config CONFIG --start ISO --hours N [--rate R]
  [--seed S] [--bad-lines] [--json]`` (a progress bar on stderr when it is a terminal).
"""

from __future__ import annotations

import argparse
import bisect
import gc
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import chain
from pathlib import Path
from statistics import NormalDist
from zoneinfo import ZoneInfo

import orjson

from ingest.layout import Hour, hour_of, minute_path

TWITTER_EPOCH_MS = 1288834974657  # X's snowflake epoch (2010-11-04T01:42:54.657Z)
TWARC_VERSION = "2.14.0"
# The URL twarc records: requests' resp.url for the collector's request (fields it asks for,
# plus backfill). Cosmetic for the build, but keeps lines looking like the real thing.
STREAM_URL = (
    "https://api.twitter.com/2/tweets/sample/stream?expansions=author_id"
    "&tweet.fields=id%2Cconversation_id%2Cauthor_id%2Ccreated_at%2Csource%2Clang%2Ctext"
    "%2Creferenced_tweets%2Centities%2Cpublic_metrics%2Cpossibly_sensitive"
    "%2Cedit_history_tweet_ids%2Cin_reply_to_user_id%2Ccontext_annotations"
    "&user.fields=created_at%2Clocation%2Cname%2Cusername%2Cverified%2Cprotected"
    "%2Cpublic_metrics%2Cdescription%2Cprofile_image_url%2Curl&backfill_minutes=5"
)
BAD_LINE_KINDS = ("blank", "errors", "invalid_json", "invalid_utf8", "cut_last_line")
OPERATIONAL_DISCONNECT = {
    "errors": [
        {
            "title": "operational-disconnect",
            "disconnect_type": "OperationalDisconnect",
            "detail": "This stream has been disconnected for operational reasons.",
            "type": "https://api.twitter.com/2/problems/operational-disconnect",
        }
    ]
}
MINUTE_MS = 60_000
_OVERLAP_MS = 4000  # a backfill re-sends this much before the gap: duplicates on one server
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


# --- IDs and time ---------------------------------------------------------------------------


def snowflake_id(ms: int, worker: int = 0, seq: int = 0) -> int:
    """An X snowflake ID for the instant ``ms`` (Unix epoch milliseconds)."""
    return ((ms - TWITTER_EPOCH_MS) << 22) | ((worker & 0x3FF) << 12) | (seq & 0xFFF)


def snowflake_ms(tweet_id: int | str) -> int:
    """Unix epoch milliseconds encoded in a snowflake ID."""
    return (int(tweet_id) >> 22) + TWITTER_EPOCH_MS


def snowflake_time(tweet_id: int | str) -> datetime:
    """The UTC instant encoded in a snowflake ID (its created_at, to the millisecond)."""
    return _EPOCH + snowflake_ms(tweet_id) * _MS


def to_ms(instant: datetime) -> int:
    """Unix epoch milliseconds of an aware datetime (exact integer arithmetic)."""
    if instant.tzinfo is None:
        raise ValueError(f"{instant!r} needs a time zone (use UTC)")
    return (instant - _EPOCH) // _MS


def _api_time(sec: int) -> str:
    """API v2 created_at: ``2026-01-14T10:00:00.000Z`` (the API sends whole seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(sec))


def _twarc_time(sec: int) -> str:
    """twarc's retrieved_at: ``datetime.now(utc).isoformat(timespec="seconds")``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(sec))


# --- content pools --------------------------------------------------------------------------
# Per language: weight in the sample, then "|"-separated sentences, given names, locations and
# hashtags. Weights follow the rough mix of the 1 % sample (en, ja, es, pt, ar lead; und is
# common). Some strings deliberately contain "\n", "\r\n", "\r", quotes and commas: the CSV
# writer and the parser must cope with them.

# fmt: off
_LANG_TABLE: list[tuple[str, float, str, str, str, str]] = [
    ("en", 0.30,
     "I can't believe it's already Wednesday, where did the week go"
     "|this is the best thing I've seen all day, thank you for sharing"
     '|he really said "trust the process" and then left, unreal'
     "|Breaking: heavy rain expected across the region tonight, stay safe everyone"
     "|New episode is out now! Link below, let me know what you think"
     "|not me crying over a commercial at 2am again"
     "|Congratulations to everyone who graduated today, so proud of you all"
     "|the way this song hits different at night,\nI'm not okay"
     "|Reminder: drink water, take breaks, and be kind to yourself"
     "|Who else is watching the game tonight? Predictions, anyone?"
     "|Just finished a 10k run, legs are jelly but worth it"
     "|We're hiring! Remote-friendly roles in data, design and support"
     "|my cat knocked my coffee off the desk and looked me dead in the eye"
     "|Thread: 5 things I wish I knew before starting my own business"
     "|Price drop alert, 40% off for the next 24 hours only",
     "James|Olivia|Liam|Emma|Noah|Ava|Mia|Ethan|Chloe|Jay",
     "London, England|Los Angeles, CA|New York, USA|Lagos, Nigeria|Toronto|Sydney, Australia"
     "|Manila|Texas|she/her|Earth 🌍|Dublin, Ireland",
     "NowPlaying|NFL|Breaking|giveaway|BTS|crypto|WorldCup|AI"),
    ("ja", 0.16,
     "今日はめっちゃ寒かった…明日も仕事がんばろう|新作のゲーム、やっと届いた！今夜は徹夜かも"
     "|おはようございます☀️今日も一日よろしくお願いします|このアニメの最終回、泣いた。本当にありがとう"
     "|ラーメン食べに行ったら行列がすごくて諦めた"
     "|フォロワーさん1000人ありがとうございます！\nこれからもよろしくお願いします"
     "|「また明日ね」って言われただけで嬉しい|電車が遅れていて、会社に間に合わないかもしれない"
     "|推しの誕生日、おめでとう🎂ずっと応援してます|抽選結果、外れました…次こそは",
     "ゆうき|さくら|はると|あおい|たくみ|みゆ|けんた|なな",
     "東京都|大阪|日本|北海道 札幌市|福岡|神奈川県, 横浜",
     "拡散希望|プレゼント企画|ポケモン|原神|今日の一枚"),
    ("es", 0.08,
     "no puedo más con este calor, alguien más está sufriendo"
     "|Hoy se cumple un año de la mejor decisión de mi vida"
     "|Buenos días a todos, que tengan un excelente día"
     '|mi mamá: "¿ya comiste?" yo: sí. también yo: no'
     "|El partido de anoche fue increíble, qué golazo"
     "|Se busca perrito perdido en la colonia Roma, cualquier información se agradece"
     "|gracias por tanto, de verdad,\nlos quiero mucho"
     "|Última hora: el gobierno anuncia nuevas medidas económicas",
     "Sofía|Mateo|Valentina|Santiago|Lucía|Diego|Camila|Andrés",
     "Ciudad de México|Buenos Aires, Argentina|Madrid, España|Bogotá|Lima, Perú",
     "LaVozMexico|FelizLunes|Boca|RealMadrid|Noticias"),
    ("pt", 0.06,
     "gente eu não aguento mais essa semana|Bom dia! Hoje tem jogo do Flamengo, bora"
     "|alguém me explica o que aconteceu no BBB ontem"
     "|saudade de quando a gente só se preocupava com a escola"
     "|Promoção relâmpago, só hoje, corre que acaba|tô com tanta fome que comeria um boi inteiro",
     "João|Maria|Pedro|Ana|Lucas|Beatriz|Gabriel|Júlia",
     "São Paulo, Brasil|Rio de Janeiro|Lisboa, Portugal|Belo Horizonte|Brasil",
     "BBB26|Flamengo|Bolsonaro|Lula|ForaDaCaixa"),
    ("ar", 0.06,
     "صباح الخير على الجميع، يوم جميل إن شاء الله|اللهم اجعل هذا اليوم خيرا لنا ولكم"
     "|مباراة رائعة اليوم، مبروك للفريق|سبحان الله وبحمده، سبحان الله العظيم"
     "|أحتاج إجازة طويلة جدا\nبعيدا عن كل شيء|عاجل: ارتفاع درجات الحرارة في معظم المناطق",
     "محمد|فاطمة|أحمد|نورة|عبدالله|سارة|خالد|ريم",
     "الرياض, المملكة العربية السعودية|القاهرة|دبي|الكويت|جدة",
     "السعودية|الهلال|عاجل|رمضان|مصر"),
    ("ko", 0.04,
     "오늘 진짜 너무 행복했어 고마워요|컴백 축하해요!! 이번 노래 너무 좋아"
     "|내일 시험인데 아직 하나도 공부 안 함|날씨가 너무 추워서 밖에 나가기 싫다"
     "|생일 축하합니다 🎉\n항상 응원할게요",
     "민지|지훈|서연|도윤|하은|준호", "서울|Seoul, Korea|부산|대한민국",
     "BTS|방탄소년단|NewJeans|SEVENTEEN|생일축하해"),
    ("th", 0.04,
     "วันนี้เหนื่อยมากเลย อยากนอนยาวๆ|ยินดีด้วยนะคะ เก่งมากๆ เลย"
     "|ใครดูละครเมื่อคืนบ้าง ตอนจบคือดีมาก|หิวข้าวมาก กินอะไรดีวันนี้",
     "สมชาย|มาลี|ณัฐ|พลอย|ธนา", "กรุงเทพมหานคร|Bangkok, Thailand|เชียงใหม่",
     "BrightWin|ไบร์ทวิน|ดูละคร|แจกจริง"),
    ("in", 0.03,
     "selamat pagi semuanya, semoga hari ini lancar|capek banget hari ini, pengen rebahan aja"
     "|ada yang tau toko yang buka jam segini?",
     "Putri|Budi|Ayu|Rizky|Dewi", "Jakarta, Indonesia|Bandung|Surabaya",
     "Indonesia|infoBDG|giveaway"),
    ("tr", 0.03,
     "günaydın herkese, güzel bir gün olsun|bu maçı kaçıran çok şey kaçırdı, inanılmazdı"
     "|hiçbir şey eskisi gibi değil artık",
     "Mehmet|Ayşe|Emre|Zeynep|Can", "İstanbul, Türkiye|Ankara|İzmir",
     "Galatasaray|Fenerbahçe|sondakika"),
    ("fr", 0.025,
     "j'en peux plus de ce temps, vivement l'été|Bonne journée à tous, on lâche rien"
     "|c'est pas possible d'être aussi beau, franchement"
     "|Le match de ce soir, vous le sentez comment ?",
     "Léa|Hugo|Chloé|Louis|Manon|Théo", "Paris, France|Lyon|Montréal, Québec|Bruxelles|Abidjan",
     "PSG|OMPSG|Politique|JeudiPhoto"),
    ("hi", 0.015,
     "सभी को सुप्रभात, आपका दिन शुभ हो|आज का मैच बहुत शानदार था|जय श्री राम 🙏",
     "राहुल|प्रिया|अमित|पूजा", "नई दिल्ली, भारत|Mumbai, India|जयपुर", "India|IPL|जय_हिंद"),
    ("tl", 0.015,
     "grabe ang init ngayon, sobrang pagod ako|salamat sa lahat ng sumuporta sa amin",
     "Juan|Maria|Angelo|Bea", "Manila, Philippines|Cebu City|Quezon City", "PBBGen11|Pilipinas"),
    ("de", 0.01,
     "Guten Morgen, heute wird ein guter Tag|Die Bahn hat mal wieder 40 Minuten Verspätung",
     "Lukas|Anna|Jonas|Lena", "Berlin, Deutschland|München|Wien, Österreich", "Bundesliga|Tatort"),
    ("ru", 0.01,
     "Доброе утро всем, хорошего дня|не могу поверить, что это правда",
     "Алексей|Мария|Дмитрий|Анна", "Москва, Россия|Санкт-Петербург", "новости|футбол"),
    ("it", 0.01,
     "buongiorno a tutti, che bella giornata|non ci posso credere, che partita",
     "Giulia|Marco|Francesca|Luca", "Roma, Italia|Milano", "SerieA|Sanremo2026"),
    ("fa", 0.01,
     "صبح همگی بخیر، روز خوبی داشته باشید|این آهنگ خیلی قشنگه",
     "علی|زهرا|رضا|مریم", "تهران, ایران|Tehran", "ایران"),
    ("zh", 0.01,
     "今天天气真好，出去走走|这部电影太好看了，推荐给大家", "小明|李华|王芳", "台北|香港|上海",
     "台灣|每日一图"),
    # und / zxx: emoji-only, mention-only or link-only texts; no sentences.
    ("und", 0.07, "", "✨|Aki|R|JJ", "🌙|somewhere|🇧🇷", "fyp"),
    ("zxx", 0.01, "", "media|pix", "", ""),
]

_EMOJI = ("😂 ❤️ 🤣 😭 🙏 😍 🔥 ✨ 🥺 👀 💜 🎉 😊 👇 🇺🇸 🇯🇵 🇧🇷 💀 🥰 😅 👏 💯 🌸 ⚽ 🏳️‍🌈 👩🏽‍💻 "
          "🙌🏻").split()
_SOURCES = ("Twitter for iPhone|Twitter for Android|Twitter Web App|Twitter for iPad"
            "|TweetDeck Web App|IFTTT|Buffer|dlvr.it|WordPress.com|Hootsuite Inc.").split("|")
_ENDINGS = ["", "", "", ".", ".", "!", "!!", "?", "…", " 😂", " 😭", "...", " lol"]
# Separators between two sentences: mostly a space or "\n", sometimes "\r\n" or a lone "\r".
_SEPARATORS = [(0.50, " "), (0.80, "\n"), (0.92, "\n\n"), (0.97, "\r\n"), (1.0, "\r")]
_DESCRIPTIONS = (
    "|||just vibes ✨|she/her · 22 · 🇧🇷|Official account. Tweets by the team."
    "|Love, music & coffee ☕|フォロー歓迎です！\n無言フォロー失礼します"
    "|Periodista. Opiniones propias."
    "|🎮 streamer, business: contact@example.com|ARMY 💜 since 2017\nOT7 forever"
    '|views are my own, "RT ≠ endorsement"|محب للخير 🤍|팬계정 / fan account'
    "|Dad, runner, engineer.\r\nLondon → Berlin|📍 Lagos, Tech, football and more"
    "|Artist. Commissions open, DM me|เป็นแค่คนธรรมดา|18+ NSFW ⚠️"
    "|News, weather and traffic, 24/7.|Futebol, cerveja e churrasco 🍺"
).split("|")
_SYLLABLES = ("ka mi ro sun ny lee jo sa to ri an el ma xo ze bo lu ki dan ya fi no star moon "
              "real the its x tv").split()
# context_annotations: (domain id, name, description, entity id, name, description or "").
_CONTEXT = [
    ("10", "Person", "Named people in the world like Nelson Mandela",
     "844438182523383808", "BTS", ""),
    ("54", "Musician", "A musician in the world, like Adele or Bob Dylan",
     "844438182523383808", "BTS", ""),
    ("55", "Music Genre", "A category for a musical style, like Pop, Rock, or Rap",
     "888105153038958593", "K-pop", "K-Pop"),
    ("11", "Sport", "Types of sports, like soccer and basketball",
     "847900493514891265", "Soccer", "Soccer"),
    ("12", "Sports Team", "A sports team organization, like the Golden State Warriors",
     "10026378521", "Real Madrid CF", ""),
    ("65", "Interests and Hobbies Vertical",
     "Top level interests and hobbies groupings, like Food or Travel",
     "847528391163092993", "Entertainment", "Entertainment"),
    ("66", "Interests and Hobbies Category",
     "A grouping of interests and hobbies entities, like Novelty Food or Destinations",
     "1280542185337778176", "Video games", "Video games"),
    ("131", "Unified Twitter Taxonomy", "A taxonomy view into the Twitter interests graph",
     "847878884917886977", "Cryptocurrencies", "Cryptocurrency"),
    ("35", "Politician", "Politicians in the world, like Joe Biden",
     "1349149096909668363", "Politics", ""),
    ("46", "Business Taxonomy",
     "Categories within Brand Verticals that narrow down the scope of Brands",
     "1557696940178935808", "Gaming Business",
     "Brands, companies, advertisers and every non-person handle with the profit intent "
     "related to offline and online games"),
    ("139", "Fan Community", "A viral fan community like 'Lovatics' (fans of Demi Lovato)",
     "1086308747654266880", "BTS ARMY", "BTS fan community ARMY"),
    ("3", "TV Shows", "Television shows from around the world",
     "10040395078", "Big Brother Brasil", ""),
]
_URL_SITES = [
    "https://www.youtube.com/watch?v=", "https://open.spotify.com/track/",
    "https://www.instagram.com/p/", "https://www.nytimes.com/2026/01/14/world/",
    "https://www3.nhk.or.jp/news/html/20260114/k1", "https://g1.globo.com/politica/noticia/",
    "https://www.amazon.co.jp/dp/", "https://bit.ly/",
]
# fmt: on


# Extra everyday words, so that fresh texts are as varied (and as hard to compress) as real
# ones rather than a handful of sentences repeated.
# fmt: off
_EXTRA_WORDS = {
    "en": "the a to and of in is it you that for on my this i me so be with just have but "
          "not are at all like your we what was if do get can out about up one more time "
          "no love people today now day know good see how will really why back new go got "
          "much still never need want think make going some they them than here 😭 lol omg "
          "tbh fr ngl literally actually honestly tonight tomorrow week year game team "
          "music video song album movie show season fans thank please happy birthday "
          "finally best worst crazy amazing beautiful sad tired hungry work school home "
          "money free win live news update official vote president government city road "
          "weather rain cold hot coffee food pizza dog cat baby mom dad friend friends "
          "world life heart mind god wow yes yeah okay ok, well, so, \"no\" 'yes' 100% 2026 "
          "3pm #1 $20 10k",
    "es": "el la de que y a en un ser se no por con su para como estar tener le lo todo pero "
          "más hacer o poder decir este ir otro ese si me ya ver porque dar cuando muy sin "
          "vez mucho saber qué sobre mi alguno mismo yo también hasta año dos querer entre "
          "así primero desde grande eso ni nos llegar pasar tiempo ella sí día uno bien "
          "jajaja jajajaja amigo amor vida gente hoy mañana noche partido gol equipo",
    "pt": "o a de que e do da em um para é com não uma os no se na por mais as dos como mas "
          "foi ao ele das tem à seu sua ou ser quando muito há nos já está eu também só pelo "
          "pela até isso ela entre era depois sem mesmo aos ter seus quem nas me esse eles "
          "kkkkk kkkk mano gente hoje amanhã jogo time amor vida",
    "fr": "le de un à être et en avoir que pour dans ce il qui ne sur se pas plus pouvoir par "
          "je avec tout faire son mettre autre on mais nous comme ou si leur y dire elle "
          "mdr ptdr grave trop bien jsp wsh",
    "tr": "ve bir bu da ne için çok ben ile o gibi daha mi sen ama var yok değil her şey "
          "kadar sonra olarak ya de en ki",
    "in": "yang dan di ini itu dengan untuk tidak ada aku kamu juga ke dari bisa sudah mau "
          "banget aja udah gak nggak wkwk wkwkwk",
    "de": "der die und in den von zu das mit sich des auf für ist im dem nicht ein eine als "
          "auch es an er hat aus bei sind noch nach",
    "it": "il di che e la in un a per non una sono mi si ma con come lo ha le da questo ci",
    "tl": "ang ng sa na at mga ko ka ako mo ba lang po naman kasi talaga hindi din rin",
}
# fmt: on


def _split(s: str) -> list[str]:
    return s.split("|") if s else []


_NO_SPACES = {"ja", "zh", "th"}  # scripts written without spaces between words


def _vocabulary(code: str, sentences: list[str]) -> list[str]:
    """Words to compose fresh texts from: the sentences' own words plus everyday words."""
    words: list[str] = []
    for sentence in sentences:
        flat = " ".join(sentence.split())
        if code in _NO_SPACES:  # 1-3 character pieces read like the script
            i = 0
            while i < len(flat):
                n = 1 + (i * 7 + len(flat)) % 3
                piece = flat[i : i + n].strip()
                if piece:
                    words.append(piece)
                i += n
        else:
            words.extend(flat.split(" "))
    words.extend(_EXTRA_WORDS.get(code, "").split())
    return words


_LANGS = {
    c: (w, _split(s), _split(n), _split(loc), _split(h)) for c, w, s, n, loc, h in _LANG_TABLE
}
_LANG_CODES = list(_LANGS)
_LANG_CUM: list[float] = []
_acc = 0.0
for _code in _LANG_CODES:
    _acc += _LANGS[_code][0]
    _LANG_CUM.append(_acc)
_LANG_TOTAL = _acc
_CONTEXT_ITEMS = [
    {
        "domain": {"id": di, "name": dn, "description": dd},
        "entity": {"id": ei, "name": en, **({"description": ed} if ed else {})},
    }
    for di, dn, dd, ei, en, ed in _CONTEXT
]

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# Standard normal quantiles: a lognormal draw is then one random() and one exp(), far cheaper
# than random.lognormvariate on the hot path.
_Z = [NormalDist().inv_cdf((i + 0.5) / 1024) for i in range(1024)]
_RETWEET, _REPLY, _QUOTE, _ORIGINAL = range(4)


@dataclass
class _Lang:
    code: str
    weight: float
    sentences: list[str]
    names: list[str]
    locations: list[str]
    hashtags: list[str]
    vocabulary: list[str] = field(default_factory=list)
    joiner: str = " "


class TweetFactory:
    """Makes realistic sampled-stream lines (``{"data": ..., "includes": {"users": [...]}}``).

    Deterministic: the same seed and the same sequence of ``make`` calls give the same lines.
    IDs are snowflakes of ``created_at`` with a per-factory sequence in the low bits, so they
    are unique (within one factory), grow with time and have 19 digits for current dates.

    Speed comes from pools filled on first use: retweeted texts per language (the same viral
    tweet is retweeted many times in an hour, as in the real sample), author templates,
    recurring authors. Other texts are composed fresh from each language's words, so an hour
    compresses about as well as real text does. Returned dicts share pooled parts with other
    lines: treat them as read-only (serialize or deep-copy before editing).
    """

    def __init__(
        self,
        seed: int = 0,
        recurring_authors: int = 20_000,
        recurring_share: float = 0.35,
        missing_author: float = 0.01,
        retweet_texts: int = 16_384,
    ) -> None:
        self._rng = random.Random(seed)
        rnd = self._rng
        self._n = 0
        self.last_id = 0  # the ID of the latest line made (saves parsing it back)
        self._recurring_share = recurring_share
        self._missing_author = missing_author
        # Recurring authors: a quadratic pick makes a few of them post often, as real heavy
        # posters do; their counts move between their tweets (users file: latest tweet wins).
        self._pool: list[dict | None] = [None] * max(1, recurring_authors)
        self._templates: list[tuple | None] = [None] * 8192
        self._avatars = [
            f"https://pbs.twimg.com/profile_images/{rnd.randrange(10**18, 2 * 10**18)}/"
            + "".join(rnd.choices(_ALNUM, k=8))
            + "_normal.jpg"
            for _ in range(4096)
        ]
        self._tco = ["".join(rnd.choices(_ALNUM, k=10)) for _ in range(4096)]
        self._handles = [self._new_handle() for _ in range(3000)]
        self._langs = [
            _Lang(
                c,
                *_LANGS[c],
                vocabulary=_vocabulary(c, _LANGS[c][1]),
                joiner="" if c in _NO_SPACES else " ",
            )
            for c in _LANG_CODES
        ]
        # Retweeted texts per language, sized by the language's share of the sample.
        self._retweets: list[list[list | None]] = [
            [None] * max(16, int(lang.weight * retweet_texts)) for lang in self._langs
        ]
        self._contexts = [rnd.sample(_CONTEXT_ITEMS, rnd.randint(1, 5)) for _ in range(64)]
        self._emoji = ["".join(rnd.choices(_EMOJI, k=rnd.randint(1, 3))) for _ in range(512)]
        self._links = []  # (t.co URL, expanded URL, display URL)
        for code in self._tco:
            expanded = rnd.choice(_URL_SITES) + "".join(rnd.choices(_ALNUM, k=11))
            display = expanded.split("://", 1)[1]
            if len(display) > 26:
                display = display[:26] + "…"
            self._links.append(("https://t.co/" + code, expanded, display))
        # Lognormal counts as lookup tables (one random() per draw on the hot path).
        self._followers = [int(math.exp(4.5 + 2.0 * z)) for z in _Z]
        self._following = [int(math.exp(5.5 + 1.3 * z)) for z in _Z]
        self._tweet_counts = [int(math.exp(7.5 + 2.0 * z)) + 1 for z in _Z]
        # Tweet public_metrics at stream time: near zero, except the retweeted original's
        # retweet_count. Shared read-only dicts.
        self._rt_metrics = [
            {"retweet_count": int(math.exp(3 + 2.5 * z)), "reply_count": 0, "like_count": 0,
             "quote_count": 0, "bookmark_count": 0, "impression_count": 0}
            for z in _Z
        ]  # fmt: skip
        self._metrics = [
            {"retweet_count": 0, "reply_count": 0, "like_count": 0, "quote_count": 0,
             "bookmark_count": 0, "impression_count": i}
            for i in (0, 0, 1, 2)
        ]  # fmt: skip
        self._sec_cache: dict[int, str] = {}

    # -- small helpers ------------------------------------------------------------------

    def _new_handle(self) -> str:
        r = self._rng.random
        s = _SYLLABLES
        h = s[int(r() * len(s))] + s[int(r() * len(s))]
        if r() < 0.6:
            h += s[int(r() * len(s))]
        if r() < 0.3:
            h += "_"
        if r() < 0.2:
            h = h.capitalize()
        return h[:11]

    def _lang_index(self) -> int:
        return bisect.bisect(_LANG_CUM, self._rng.random() * _LANG_TOTAL)

    def _api_time(self, sec: int) -> str:
        s = self._sec_cache.get(sec)
        if s is None:
            if len(self._sec_cache) > 10_000:
                self._sec_cache.clear()
            s = self._sec_cache[sec] = _api_time(sec)
        return s

    def _tco_url(self) -> str:
        return "https://t.co/" + self._tco[int(self._rng.random() * 4096)]

    # -- authors ------------------------------------------------------------------------

    def _template(self, now_ms: int) -> tuple:
        """An author's look (language, name, bio, place, age); shared by many authors."""
        r = self._rng.random
        li = self._lang_index()
        lang = self._langs[li]
        # Account age: many young accounts, a long tail back to 2007.
        created_ms = now_ms - int(86_400_000 * (1 + 6_900 * r() ** 1.6))
        names = lang.names or self._langs[0].names
        name = names[int(r() * len(names))]
        u = r()
        if u < 0.25:
            name += " " + _EMOJI[int(r() * len(_EMOJI))]
        elif u < 0.35:
            name = name.upper() + "🌙"
        elif u < 0.37:
            name = f'{name} "{lang.code.upper()}", fan acc'
        elif u < 0.385:
            name = name + "\n" + _EMOJI[int(r() * len(_EMOJI))]
        elif u < 0.39:
            name = name + "\r\n" + lang.code
        location = None
        if lang.locations and r() < 0.55:
            location = lang.locations[int(r() * len(lang.locations))]
            v = r()
            if v < 0.02:
                location += "\n" + _EMOJI[int(r() * len(_EMOJI))]
            elif v < 0.03:
                location += "\r\nand elsewhere"
            elif v < 0.035:
                location = f'"{location}", {location}'
            elif v < 0.04:
                location += "\r" + lang.code
        # The author's dict in the API's key order; ``_new_author`` copies it and fills in
        # the per-account fields (a C-level dict copy is far cheaper than building one).
        shape = {
            "id": "",
            "name": name,
            "username": "",
            "created_at": self._api_time(created_ms // 1000),
            "description": _DESCRIPTIONS[int(r() * len(_DESCRIPTIONS))],
        }
        if location is not None:
            shape["location"] = location
        shape["verified"] = r() < 0.02
        shape["protected"] = False
        shape["public_metrics"] = None
        shape["profile_image_url"] = ""
        shape["url"] = "" if r() < 0.7 else self._tco_url()
        return li, created_ms, shape

    def _new_author(self, now_ms: int) -> tuple[dict, int]:
        """A fresh account (and its language index) from one of the templates."""
        r = self._rng.random
        i = int(r() * len(self._templates))
        t = self._templates[i]
        if t is None:
            t = self._templates[i] = self._template(now_ms)
        li, created_ms, shape = t
        author = shape.copy()
        if created_ms < 1_420_070_400_000 or r() < 0.02:  # before 2015: old sequential IDs
            author["id"] = str(int(10_000 + r() * 3_000_000_000))
        else:
            author["id"] = str(
                ((created_ms - TWITTER_EPOCH_MS) << 22) | int(r() * 4_194_304)  # 22 low bits
            )
        handle = self._handles[int(r() * 3000)]
        author["username"] = handle + str(int(r() * 10_000)) if r() < 0.7 else handle
        if r() < 0.002:
            author["protected"] = True
        followers = self._followers[int(r() * 1024)]
        author["public_metrics"] = {
            "followers_count": followers,
            "following_count": self._following[int(r() * 1024)],
            "tweet_count": self._tweet_counts[int(r() * 1024)],
            "listed_count": int(followers * r() * 0.01),
        }
        author["profile_image_url"] = self._avatars[int(r() * 4096)]
        return author, li

    def _author(self, now_ms: int) -> tuple[dict, int]:
        r = self._rng.random
        if r() < self._recurring_share:
            pool = self._pool
            i = int(r() * r() * len(pool))  # skewed: low indexes post far more often
            entry = pool[i]
            if entry is None:
                entry = pool[i] = self._new_author(now_ms)
            base, li = entry
            pm = base["public_metrics"]
            pm["tweet_count"] += 1  # the counts move between an author's tweets, as live
            if r() < 0.3:
                pm["followers_count"] += 1
            out = base.copy()
            out["public_metrics"] = pm.copy()
            return out, li
        return self._new_author(now_ms)

    # -- texts --------------------------------------------------------------------------

    def _words(self, lang: _Lang) -> str:
        """A sentence: now and then a curated one, mostly fresh words of the language."""
        r = self._rng.random
        if r() < 0.15:  # curated: real phrasing, with its quotes, commas and line breaks
            return lang.sentences[int(r() * len(lang.sentences))]
        vocab = lang.vocabulary
        nv = len(vocab)
        text = lang.joiner.join([vocab[int(r() * nv)] for _ in range(2 + int(r() * r() * 24))])
        if lang.joiner:
            text = text[:1].upper() + text[1:]
        return text + _ENDINGS[int(r() * len(_ENDINGS))]

    def _text(self, lang: _Lang, kind: int, ms: int) -> list:
        """[text, entities or None, referenced list (retweets) or None, reply-to user id]."""
        r = self._rng.random
        handles = self._handles
        parts: list[str] = []
        pos = 0  # length so far in code points (the API's entity offsets are code points)
        mentions: list[dict] = []
        hashtags: list[dict] = []
        urls: list[dict] = []
        referenced = None
        reply_to = None
        if kind == _RETWEET:  # "RT @user: " + the original's text
            h = handles[int(r() * 3000)]
            parts.append(f"RT @{h}: ")
            mentions.append({"start": 3, "end": 4 + len(h), "username": h})
            pos = 6 + len(h)
            orig = snowflake_id(ms - int(1000 + 259_200_000 * r() ** 3), int(r() * 1024))
            referenced = [{"type": "retweeted", "id": str(orig)}]
        elif kind == _REPLY:
            for _ in range(2 if r() < 0.2 else 1):
                h = handles[int(r() * 3000)]
                parts.append(f"@{h} ")
                mentions.append({"start": pos, "end": pos + 1 + len(h), "username": h})
                pos += 2 + len(h)
            reply_to = str(int(10_000 + r() * 3_000_000_000))

        pos, link = self._body(lang, parts, pos, mentions, hashtags)
        for _ in range((r() < link) + (kind == _QUOTE)):  # a link; a quote links the quoted
            u, expanded, display = self._links[int(r() * 4096)]
            if pos:
                parts.append(" ")
                pos += 1
            parts.append(u)
            urls.append(
                {
                    "start": pos,
                    "end": pos + len(u),
                    "url": u,
                    "expanded_url": expanded,
                    "display_url": display,
                }
            )
            pos += len(u)
        entities = {}
        if mentions:
            entities["mentions"] = mentions
        if hashtags:
            entities["hashtags"] = hashtags
        if urls:
            entities["urls"] = urls
        return ["".join(parts), entities or None, referenced, reply_to]

    def _body(
        self, lang: _Lang, parts: list[str], pos: int, mentions: list[dict], hashtags: list[dict]
    ) -> tuple[int, float]:
        """The words (with hashtags and a mention) or emoji after the lead, from ``pos``:
        (length in code points, chance of a link)."""
        r = self._rng.random
        if lang.sentences:
            body = self._words(lang)
            if r() < 0.35:
                v = r()
                sep = " "
                for p, sep in _SEPARATORS:  # noqa: B007 (sep is the one chosen)
                    if v < p:
                        break
                body += sep + self._words(lang)
            if r() < 0.4:
                body += " " + self._emoji[int(r() * 512)]
            parts.append(body)
            pos += len(body)
            if lang.hashtags and r() < 0.25:
                for _ in range(1 + int(r() * 2)):
                    tag = lang.hashtags[int(r() * len(lang.hashtags))]
                    parts.append(f" #{tag}")
                    hashtags.append({"start": pos + 1, "end": pos + 2 + len(tag), "tag": tag})
                    pos += 2 + len(tag)
            if r() < 0.08:
                h = self._handles[int(r() * 3000)]
                parts.append(f" @{h}")
                mentions.append({"start": pos + 1, "end": pos + 2 + len(h), "username": h})
                pos += 2 + len(h)
            return pos, 0.25
        if lang.code == "und":
            body = self._emoji[int(r() * 512)]
            parts.append(body)
            return pos + len(body), 0.3
        return pos, 1.0  # zxx: a link (media) only

    # -- tweets -------------------------------------------------------------------------

    def make(self, created_at: datetime) -> dict:
        """One sampled-stream line created at ``created_at`` (aware datetime)."""
        return self.make_ms(to_ms(created_at))

    def make_ms(self, ms: int) -> dict:
        """One sampled-stream line created at Unix epoch millisecond ``ms`` (the fast path)."""
        r = self._rng.random
        self._n += 1
        tid = ((ms - TWITTER_EPOCH_MS) << 22) | (int(r() * 1024) << 12) | (self._n & 0xFFF)
        self.last_id = tid
        sid = str(tid)
        author, li = self._author(ms)
        if r() >= 0.8:
            li = self._lang_index()
        k = r()
        kind = _RETWEET if k < 0.45 else _REPLY if k < 0.70 else _QUOTE if k < 0.76 else _ORIGINAL
        if kind == _RETWEET:
            # Retweets come from a pool: the same viral tweet is retweeted again and again.
            pool = self._retweets[li]
            i = int(r() * len(pool))
            entry = pool[i]
            if entry is None:
                entry = pool[i] = self._text(self._langs[li], kind, ms)
        else:
            entry = self._text(self._langs[li], kind, ms)
        text, entities, referenced, reply_to = entry

        conversation_id = sid
        if kind == _REPLY:
            parent = snowflake_id(ms - int(2000 + 86_400_000 * r() ** 4), int(r() * 1024))
            if r() < 0.4:  # a reply deeper in a thread: the conversation began earlier
                conversation_id = str(snowflake_id((parent >> 22) + TWITTER_EPOCH_MS - 60_000))
            else:
                conversation_id = str(parent)
            referenced = [{"type": "replied_to", "id": str(parent)}]
        elif kind == _QUOTE:
            quoted = snowflake_id(ms - int(5000 + 86_400_000 * r() ** 2), int(r() * 1024))
            referenced = [{"type": "quoted", "id": str(quoted)}]

        data: dict = {"edit_history_tweet_ids": [sid], "author_id": author["id"], "text": text}
        if referenced:
            data["referenced_tweets"] = referenced
        data["conversation_id"] = conversation_id
        data["created_at"] = self._api_time(ms // 1000)
        data["lang"] = _LANG_CODES[li]
        data["possibly_sensitive"] = r() < 0.03
        if kind == _RETWEET:
            data["public_metrics"] = self._rt_metrics[int(r() * 1024)]
        else:
            data["public_metrics"] = self._metrics[int(r() * 4)]
        if r() < 0.5:  # X stopped sending source for many tweets
            data["source"] = _SOURCES[int(r() * len(_SOURCES))]
        if entities:
            data["entities"] = entities
        if r() < 0.45:
            data["context_annotations"] = self._contexts[int(r() * len(self._contexts))]
        if reply_to:
            data["in_reply_to_user_id"] = reply_to
        data["reply_settings"] = "everyone"
        data["id"] = sid

        v = r()
        if v < self._missing_author:  # author not expanded: no includes, or an empty one
            if v < self._missing_author / 2:
                return {"data": data}
            return {"data": data, "includes": {}}
        return {"data": data, "includes": {"users": [author]}}


# --- the collector's line -------------------------------------------------------------------


def _twarc_suffix(retrieved_sec: int) -> bytes:
    """The bytes that close a line: ``,"__twarc":{...}}`` + newline."""
    meta = {"url": STREAM_URL, "version": TWARC_VERSION, "retrieved_at": _twarc_time(retrieved_sec)}
    return b',"__twarc":' + orjson.dumps(meta) + b"}\n"


def stream_line(tweet: dict, retrieved_at: datetime) -> bytes:
    """The raw-file line the collector writes: the line as received plus twarc's ``__twarc``."""
    if retrieved_at.tzinfo is None:
        raise ValueError(f"{retrieved_at!r} needs a time zone (use UTC)")
    line = dict(tweet)
    line["__twarc"] = {
        "url": STREAM_URL,
        "version": TWARC_VERSION,
        "retrieved_at": retrieved_at.astimezone(UTC).isoformat(timespec="seconds"),
    }
    return orjson.dumps(line) + b"\n"


def wire_line(tweet: dict) -> bytes:
    """The line as X sends it on the wire (compact JSON, CRLF-terminated): for the emulator."""
    return orjson.dumps(tweet) + b"\r\n"


# --- raw trees ------------------------------------------------------------------------------

Interval = tuple[datetime, datetime]


@dataclass
class ServerSummary:
    """What was written for one server; counts are of lines in files under [start, end)."""

    name: str
    raw_dir: Path
    tweets_written: int = 0  # good tweet lines (duplicates included)
    ids: set[int] | None = field(default_factory=set)  # IDs with at least one good line
    unique_ids: int = 0
    files_written: int = 0
    empty_files: int = 0
    missing_minutes: list[datetime] = field(default_factory=list)
    late_copies: int = 0  # good lines retrieved >= 60 s after created_at (backfill)
    duplicate_copies: int = 0  # good lines of an ID this server already wrote
    dropped: int = 0  # tweets of the common sequence this server did not get
    bad_lines: Counter = field(default_factory=Counter)  # kind -> lines (BAD_LINE_KINDS)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "raw_dir": str(self.raw_dir),
            "tweets_written": self.tweets_written,
            "unique_ids": self.unique_ids,
            "files_written": self.files_written,
            "empty_files": self.empty_files,
            "missing_minutes": [m.isoformat() for m in self.missing_minutes],
            "late_copies": self.late_copies,
            "duplicate_copies": self.duplicate_copies,
            "dropped": self.dropped,
            "bad_lines": dict(self.bad_lines),
        }


@dataclass
class GenerationSummary:
    start: datetime
    end: datetime
    seed: int
    tweets_generated: int = 0  # the common sequence, created in [start - 1 min, end)
    lines_written: int = 0  # every line of every file, bad ones included
    bytes_written: int = 0
    seconds: float = 0.0
    servers: dict[str, ServerSummary] = field(default_factory=dict)

    def all_ids(self) -> set[int]:
        out: set[int] = set()
        for s in self.servers.values():
            if s.ids is None:
                raise ValueError("generated with keep_ids=False")
            out |= s.ids
        return out

    def ids_by_hour(self, tz: ZoneInfo, server: str | None = None) -> dict[Hour, set[int]]:
        """Written IDs (of one server, or all) grouped by the local hour of their created_at.

        With the default ``late_delay`` every copy arrives well within the build's late
        window, so this is what each hour's IDs file should hold.
        """
        ids = self.servers[server].ids if server else self.all_ids()
        if ids is None:
            raise ValueError("generated with keep_ids=False")
        out: dict[Hour, set[int]] = {}
        for tid in ids:
            out.setdefault(hour_of(snowflake_time(tid), tz), set()).add(tid)
        return out

    def to_dict(self) -> dict:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "seed": self.seed,
            "tweets_generated": self.tweets_generated,
            "lines_written": self.lines_written,
            "bytes_written": self.bytes_written,
            "seconds": round(self.seconds, 3),
            "servers": {n: s.to_dict() for n, s in self.servers.items()},
        }


def _intervals_ms(intervals: Iterable[Interval] | None) -> list[tuple[int, int]]:
    return [(to_ms(a), to_ms(b)) for a, b in (intervals or [])]


def _inside(ms: int, intervals: list[tuple[int, int]]) -> bool:
    return any(a <= ms < b for a, b in intervals)


class _Server:
    """Per-server state while a tree is generated."""

    def __init__(self, name, raw_dir, seed, skew_ms, outages, empties, summary):
        self.name = name
        self.raw_dir = Path(raw_dir)
        self.rng = random.Random(f"{seed}:server:{name}")  # independent of the other servers
        self.skew_ms = skew_ms
        self.outages = outages
        self.empties = empties
        self.summary = summary
        self.buffer: defaultdict[int, list[tuple]] = defaultdict(list)
        self.special: defaultdict[int, list[tuple]] = defaultdict(list)
        self.special_seen: set[int] = set()
        self.start_min = 0
        self.bursts: list[tuple[int, int, int]] = []  # (gap start, gap end, reconnect) ms
        self.forced: dict[str, int] = {}  # bad-line kind -> first minute index to carry it
        self.seen: set[int] = set()
        self.suffix_cache: dict[int, bytes] = {}
        self.next_flush = 0
        self.end_min = 0
        self.dirs: set[Path] = set()


def generate_raw_tree(
    servers: Sequence[tuple[str, Path | str]],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    rate_per_minute: float = 3500,
    disagreement: float = 0.015,
    seed: int = 0,
    bad_lines: bool = False,
    late_fraction: float = 0.002,
    outages: dict[str, list[Interval]] | None = None,
    empty_minutes: dict[str, list[Interval]] | None = None,
    skew_seconds: dict[str, float] | None = None,
    late_delay: tuple[float, float] = (60.0, 150.0),
    keep_ids: bool = True,
    progress: bool = False,
) -> GenerationSummary:
    """Write minute files for every server as their collectors would have, for [start, end).

    One common tweet sequence (the sample is the same for every client) is created from one
    minute before ``start`` to ``end`` at ``rate_per_minute`` (Poisson-like noise). Each server
    misses each tweet with probability ``disagreement / 2`` (so two servers differ by about
    ``disagreement`` of the union) and receives the rest 0.5-3 s after creation plus its
    clock skew (``skew_seconds``; default 0 s, +0.4 s, -0.3 s, ... by server order). A file
    holds the copies whose arrival, by that server's clock, falls in its minute, so a tweet
    created at hh:59:59 lands in the next hour's first file. ``late_fraction`` of the copies
    come from backfill bursts: a short gap whose tweets arrive ``late_delay`` seconds later
    (with a few seconds of overlap before the gap delivered twice: within-server duplicates).
    ``outages`` (per server, UTC intervals): no file and nothing received. ``empty_minutes``:
    an empty file (connected, nothing came). Copies arriving outside [start, end) are not
    written. ``bad_lines`` adds every kind in BAD_LINE_KINDS to every server at least once
    (a corrupted tweet line no longer counts as written). Deterministic for equal arguments.
    ``progress``: a bar on stderr when it is a terminal (stream minutes done, MiB written,
    rates, time left); it never changes what is written.
    """
    t0 = time.perf_counter()
    start, end = _whole_minutes(start, end)
    start_min = to_ms(start) // MINUTE_MS
    end_min = to_ms(end) // MINUTE_MS
    summary = GenerationSummary(start=start, end=end, seed=seed)
    state = _server_states(
        servers, seed, start_min, end_min, outages, empty_minutes, skew_seconds, keep_ids, summary
    )
    _plan_bursts(state, start_min, end_min, rate_per_minute, late_fraction, late_delay)
    if bad_lines:
        _force_bad_lines(state, start_min, end_min)
    summary.tweets_generated = _write_stream(
        state,
        summary,
        start_min,
        end_min,
        tz,
        seed=seed,
        rate_per_minute=rate_per_minute,
        disagreement=disagreement,
        bad_lines=bad_lines,
        keep_ids=keep_ids,
        progress=progress,
    )
    _close_server_summaries(state, keep_ids)
    summary.seconds = time.perf_counter() - t0
    return summary


def _whole_minutes(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end) in UTC on whole minutes (``end`` rounded up); a ValueError when either has
    no time zone or the range is empty."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a time zone (use UTC)")
    start = start.astimezone(UTC).replace(second=0, microsecond=0)
    end_utc = end.astimezone(UTC)
    end = end_utc.replace(second=0, microsecond=0)
    if end < end_utc:
        end += timedelta(minutes=1)
    if end <= start:
        raise ValueError(f"empty range: start {start} >= end {end}")
    return start, end


def _server_states(
    servers: Sequence[tuple[str, Path | str]],
    seed: int,
    start_min: int,
    end_min: int,
    outages: dict[str, list[Interval]] | None,
    empty_minutes: dict[str, list[Interval]] | None,
    skew_seconds: dict[str, float] | None,
    keep_ids: bool,
    summary: GenerationSummary,
) -> list[_Server]:
    """Each server's state, its summary registered in ``summary``, in the order given."""
    outages = outages or {}
    empty_minutes = empty_minutes or {}
    default_skews = [0.0, 0.4, -0.3, 0.8, -0.6]
    state: list[_Server] = []
    for i, (name, raw_dir) in enumerate(servers):
        skew = (skew_seconds or {}).get(name, default_skews[i % len(default_skews)])
        if abs(skew) >= 30:  # minute files are flushed a minute behind the tweets
            raise ValueError(f"skew_seconds[{name!r}] = {skew}: must be under 30 s")
        s = _Server(
            name,
            raw_dir,
            seed,
            int(round(skew * 1000)),
            _intervals_ms(outages.get(name)),
            _intervals_ms(empty_minutes.get(name)),
            ServerSummary(name=name, raw_dir=Path(raw_dir), ids=set() if keep_ids else None),
        )
        s.next_flush = s.start_min = start_min
        s.end_min = end_min
        summary.servers[name] = s.summary
        state.append(s)
    return state


def _force_bad_lines(state: list[_Server], start_min: int, end_min: int) -> None:
    """Give every bad-line kind a minute of each server that writes a file with lines."""
    for s in state:
        candidates = [
            m
            for m in range(start_min, end_min)
            if not _inside(m * MINUTE_MS, s.outages) and not _inside(m * MINUTE_MS, s.empties)
        ]
        if candidates:
            for kind in BAD_LINE_KINDS:
                s.forced[kind] = s.rng.choice(candidates)


def _write_stream(
    state: list[_Server],
    summary: GenerationSummary,
    start_min: int,
    end_min: int,
    tz: ZoneInfo,
    *,
    seed: int,
    rate_per_minute: float,
    disagreement: float,
    bad_lines: bool,
    keep_ids: bool,
    progress: bool,
) -> int:
    """Create the common sequence minute by minute, give each server its copies and write the
    files of the minutes that are complete; returns the number of tweets created.

    The loop over the tweets is the generator's hot path: it stays whole, locals bound once.
    """
    factory = TweetFactory(seed)
    trng = random.Random(f"{seed}:times")
    rr = trng.random
    p_drop = disagreement / 2
    jitter = 150 / (1 - p_drop)  # the uniform that decided "kept" also gives the jitter
    dumps = orjson.dumps
    make = factory.make_ms
    per_server = [
        (
            s,
            s.rng.random,
            s.skew_ms,
            s.bursts,
            min((b[0] - _OVERLAP_MS for b in s.bursts), default=0),
            max((b[1] for b in s.bursts), default=0),
            s.buffer,
        )
        for s in state
    ]
    generated = 0
    bar = _progress_bar(end_min - start_min + 1, progress)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of acyclic dicts: the cyclic collector only costs time here
    try:
        for minute in range(start_min - 1, end_min):
            base = minute * MINUTE_MS
            n = max(0, int(trng.gauss(rate_per_minute, math.sqrt(rate_per_minute)) + 0.5))
            generated += n
            for off in sorted([int(rr() * MINUTE_MS) for _ in range(n)]):
                ms = base + off
                body = dumps(make(ms))[:-1]  # without the closing brace: __twarc goes there
                tid = factory.last_id
                delay = 500 + int(rr() ** 2 * 2500)
                for s, srr, skew, bursts, blo, bhi, buf in per_server:
                    u = srr()
                    if u < p_drop:
                        s.summary.dropped += 1
                        continue
                    arrival = ms + delay + int((u - p_drop) * jitter) + skew
                    if blo <= ms < bhi and _burst_copy(s, bursts, ms, tid, body, arrival):
                        continue
                    m = arrival // MINUTE_MS
                    if start_min <= m < end_min:  # the collector ran for [start, end) only
                        buf[m].append((arrival, tid, body))
            for s in state:
                _flush_until(s, minute - 1, tz, summary, bad_lines, keep_ids)
            if bar is not None:
                _advance(bar, summary.bytes_written)
        for s in state:
            _flush_until(s, end_min, tz, summary, bad_lines, keep_ids)
    finally:
        if bar is not None:
            bar.close()
        if gc_was_enabled:
            gc.enable()
    return generated


def _close_server_summaries(state: list[_Server], keep_ids: bool) -> None:
    """Each server's unique IDs (and, with ``keep_ids``, the IDs themselves) into its summary."""
    for s in state:
        sm = s.summary
        sm.unique_ids = sm.tweets_written - sm.duplicate_copies
        if keep_ids:
            sm.ids = s.seen
            assert len(s.seen) == sm.unique_ids
        s.seen = set()


def _progress_bar(minutes: int, wanted: bool):
    """A tqdm bar over the stream's minutes on stderr, or None (not wanted, not a terminal)."""
    if not (wanted and sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm  # the demo and bench extras: only a bar needs it
    except ImportError:
        return None  # cosmetic: generating works the same without it
    return tqdm(total=minutes, unit="min", desc="generating", file=sys.stderr, dynamic_ncols=True)


def _advance(bar, bytes_written: int) -> None:
    """One stream minute done; the postfix shows what the files hold so far."""
    mib = bytes_written / 2**20
    elapsed = bar.format_dict["elapsed"] or 1e-9
    bar.set_postfix_str(f"{mib:,.0f} MiB, {mib / elapsed:.1f} MiB/s", refresh=False)
    bar.update(1)


def _plan_bursts(state, start_min, end_min, rate, late_fraction, late_delay) -> None:
    """Backfill bursts: a gap of a few seconds whose copies arrive a minute or two later."""
    if late_fraction <= 0 or rate <= 0:
        return
    span = end_min - start_min
    per_second = rate / 60
    for s in state:
        rnd = s.rng
        expected = late_fraction * rate * span  # late copies wanted for this server
        events = max(1, round(expected / (per_second * 20)))  # ~20 s gaps at high rates
        gap_ms = max(500, int(expected / events / per_second * 1000))
        lo, hi = late_delay
        for _ in range(events):
            g = int(gap_ms * (0.5 + rnd.random()))
            delay = int(1000 * (lo + rnd.random() * (hi - lo)))
            # Place the gap so that the reconnect (and its backfill) falls inside the range.
            room = span * MINUTE_MS - g - delay
            g0 = start_min * MINUTE_MS + int(rnd.random() * max(1, room))
            rec = g0 + g + delay
            s.bursts.append((g0, g0 + g, rec))
        s.bursts.sort()


def _burst_copy(s: _Server, bursts, ms: int, tid: int, body: bytes, arrival: int) -> bool:
    """Queue the copies of a tweet near a backfill burst; True if it has no normal copy."""
    for g0, g1, rec in bursts:
        if g0 - _OVERLAP_MS <= ms < g1:
            # The backfill after the reconnect re-sends the gap (and a few seconds before it,
            # which the server already had: duplicates), fast and in created order.
            late = rec + (ms - g0 + _OVERLAP_MS) // 25 + s.skew_ms
            _special(s, late, tid, body, True)
            if ms >= g0:  # inside the gap: only the late copy exists
                return True
            _special(s, arrival, tid, body, False)
            return True
    return False


def _special(s: _Server, arrival: int, tid: int, body: bytes, late: bool) -> None:
    m = arrival // MINUTE_MS
    if s.start_min <= m < s.end_min:
        s.special[m].append((arrival, tid, body, late))


def _flush_until(s: _Server, last_min: int, tz: ZoneInfo, summary, bad: bool, keep_ids: bool):
    """Write every minute file of ``s`` up to minute index ``last_min``."""
    while s.next_flush <= last_min and s.next_flush < s.end_min:
        m = s.next_flush
        s.next_flush += 1
        _write_minute(s, m, tz, summary, bad, keep_ids)


def _write_minute(s: _Server, m: int, tz: ZoneInfo, summary, bad: bool, keep_ids: bool) -> None:
    # Copies: (arrival ms, id, body) and, near backfill bursts, (arrival, id, body, late).
    copies = s.buffer.pop(m, [])
    special = s.special.pop(m, [])
    sm = s.summary
    ms0 = m * MINUTE_MS
    minute_dt = _EPOCH + ms0 * _MS
    if _inside(ms0, s.outages):
        sm.missing_minutes.append(minute_dt)
        return
    path = minute_path(s.raw_dir, minute_dt, tz)
    if path.parent not in s.dirs:
        path.parent.mkdir(parents=True, exist_ok=True)
        s.dirs.add(path.parent)
    if _inside(ms0, s.empties) or not (copies or special):
        path.write_bytes(b"")
        sm.files_written += 1
        sm.empty_files += 1
        return
    if special:
        copies.extend(special)
    copies.sort()  # arrival order, as the collector appends them
    cache = s.suffix_cache
    if len(cache) > 300:
        cache.clear()
    if bad:
        lines = [body + suffix for body, suffix in _with_suffixes(copies, cache)]
        good: list[int | None] = list(range(len(copies)))  # line -> its copy while good
        _spoil(s, m, lines, good, copies)
        good_copies = [copies[ci] for ci in good if ci is not None]
        special = [c for c in good_copies if len(c) == 4]
        n_lines = len(lines)
        data = b"".join(lines)
    else:
        good_copies = copies
        n_lines = len(copies)
        data = b"".join(chain.from_iterable(_with_suffixes(copies, cache)))
    with open(path, "wb") as f:
        f.write(data)
    # Accounting. Duplicates and late copies only come from backfill bursts (``special``).
    sm.files_written += 1
    sm.tweets_written += len(good_copies)
    sm.late_copies += sum(1 for c in special if c[3])
    if keep_ids:
        before = len(s.seen)
        s.seen.update(c[1] for c in good_copies)
        sm.duplicate_copies += len(good_copies) - (len(s.seen) - before)
    else:
        seen = s.special_seen
        for c in special:
            if c[1] in seen:
                sm.duplicate_copies += 1
            else:
                seen.add(c[1])
    summary.lines_written += n_lines
    summary.bytes_written += len(data)


def _with_suffixes(copies: list, cache: dict[int, bytes]) -> Iterator[tuple[bytes, bytes]]:
    """(body, twarc suffix) of each copy; the suffix holds retrieved_at, so it changes by the
    second and is made once per second."""
    last_sec = -1
    suffix = b""
    for c in copies:
        sec = c[0] // 1000
        if sec != last_sec:
            suffix = cache.get(sec) or cache.setdefault(sec, _twarc_suffix(sec))
            last_sec = sec
        yield c[2], suffix


def _spoil(s: _Server, m: int, lines: list[bytes], tids: list, copies: list) -> None:
    """Mix bad lines into a minute: each kind at its forced minute, plus a random sprinkle."""
    rnd = s.rng
    r = rnd.random
    bl = s.summary.bad_lines

    def due(kind: str, p: float) -> bool:
        f = s.forced.get(kind)
        if f is not None and m >= f:
            del s.forced[kind]
            return True
        return r() < p

    # Corruptions of existing tweet lines first (each line gets one kind of damage only).
    cut = int(due("cut_last_line", 0.005))
    if cut:
        last = lines[-1]
        lines[-1] = last[: max(1, int(len(last) * (0.1 + 0.8 * r())))]  # no newline: a crash
        tids[-1] = None
        bl["cut_last_line"] += 1
    whole = len(lines) - cut  # lines that still end with a newline
    if whole > 0 and due("invalid_utf8", 0.03):
        i = int(r() * whole)
        line = lines[i]
        k = line.find(b'"text":"')
        k = k + 8 if k >= 0 else len(line) // 2
        lines[i] = line[:k] + b"\xff\xfe\xc3(" + line[k:]  # bytes no UTF-8 decoder accepts
        tids[i] = None
        bl["invalid_utf8"] += 1

    def insert(line: bytes, kind: str) -> None:
        i = int(r() * (len(lines) - cut + 1))  # never after a cut last line
        lines.insert(i, line)
        tids.insert(i, None)
        bl[kind] += 1

    if due("blank", 0.2):
        for _ in range(1 + int(r() * 3)):
            insert(b"\r\n" if r() < 0.3 else b"\n", "blank")
    if due("errors", 0.02):
        sec = copies[-1][0] // 1000
        insert(orjson.dumps(OPERATIONAL_DISCONNECT)[:-1] + _twarc_suffix(sec), "errors")
    if due("invalid_json", 0.02):
        choice = r()
        sources = [lines[i] for i, ci in enumerate(tids) if ci is not None]
        if choice < 0.5 and sources:
            # A tweet line cut short mid-line (cut on a character boundary: only the JSON
            # is broken, not the UTF-8).
            src = sources[int(r() * len(sources))]
            prefix = src[: max(2, int(len(src) * r() * 0.9))].decode("utf-8", "ignore")
            bad = prefix.rstrip("\r\n").encode() + b"\n"
            if len(bad) < 3:
                bad = b'{"data": {"id": \n'
        elif choice < 0.8:
            bad = b"<html><body><h1>503 Service Unavailable</h1></body></html>\n"
        else:
            bad = b'{"data": {"id": "1", "text": "a"}}}\n'
        insert(bad, "invalid_json")


# --- CLI ------------------------------------------------------------------------------------


def _parse_instant(text: str, tz: ZoneInfo) -> datetime:
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=tz)  # documented: local time, as the raw tree's hours
    return instant.astimezone(UTC)


def main(argv: list[str] | None = None) -> int:
    from ingest.config import ConfigError, load_config, timezone

    ap = argparse.ArgumentParser(
        prog="python -m ingest.devtools.generate",
        description="Write realistic synthetic sampled-stream minute files into the raw_dir "
        "of every server in the config.",
    )
    ap.add_argument("--config", required=True, help="the YAML config (servers[].raw_dir)")
    ap.add_argument(
        "--start",
        required=True,
        help="ISO 8601 start, e.g. 2026-01-14T10:00 (without an offset: the config's timezone)",
    )
    ap.add_argument("--hours", type=float, required=True, help="how many hours to write")
    ap.add_argument("--rate", type=float, default=3500, help="tweets per minute (default 3500)")
    ap.add_argument("--disagreement", type=float, default=0.015)
    ap.add_argument("--late-fraction", type=float, default=0.002)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bad-lines", action="store_true", help="sprinkle every kind of bad line")
    ap.add_argument("--server", action="append", help="only these servers (repeatable)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = ap.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    try:
        start = _parse_instant(args.start, timezone(config))
    except ValueError as e:
        print(f"--start: {e}", file=sys.stderr)
        return 2
    end = start + timedelta(hours=args.hours)
    servers = [(s["name"], s["raw_dir"]) for s in config["servers"]]
    if args.server:
        unknown = set(args.server) - {n for n, _ in servers}
        if unknown:
            print(f"unknown server(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        servers = [s for s in servers if s[0] in args.server]
    summary = generate_raw_tree(
        servers,
        start,
        end,
        timezone(config),
        rate_per_minute=args.rate,
        disagreement=args.disagreement,
        seed=args.seed,
        bad_lines=args.bad_lines,
        late_fraction=args.late_fraction,
        keep_ids=False,
        progress=True,
    )
    if args.json:
        print(orjson.dumps(summary.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        rate = summary.lines_written / summary.seconds if summary.seconds else 0
        print(
            f"{summary.tweets_generated} tweets, {summary.lines_written} lines, "
            f"{summary.bytes_written / 1e6:.1f} MB in {summary.seconds:.1f} s ({rate:,.0f} lines/s)"
        )
        for s in summary.servers.values():
            print(
                f"  {s.name}: {s.files_written} files ({s.empty_files} empty, "
                f"{len(s.missing_minutes)} missing), {s.tweets_written} tweet lines, "
                f"{s.unique_ids} IDs, {s.late_copies} late, {s.duplicate_copies} duplicate, "
                f"bad lines {dict(s.bad_lines) or 0} -> {s.raw_dir}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
