#!/usr/bin/env python3
"""Writes engine/tokenizer_unicode.c: the Unicode tables the tokenizers use.

Run: python3 engine/tokenizer_unicode_gen.py > engine/tokenizer_unicode.c

Built from Python's unicodedata (its Unicode version is written into the file):
  - per code point: a record {flags, canonical combining class} through a
    two-stage table (stage1[cp >> 7] picks a 128-entry block of stage2);
  - simple-and-full lower-case mappings (str.lower() of one character);
  - full canonical decompositions (NFD of one character, Hangul excluded: the
    C code decomposes Hangul syllables algorithmically);
  - canonical composition pairs of primary composites (for NFC).
White_Space is the fixed list of the Unicode property (unicodedata lacks it).

Three flags follow Hugging Face tokenizers' BERT components rather than
Unicode 14 exactly: its BertNormalizer (control characters), StripAccents
(marks) and BertPreTokenizer (punctuation) use the Rust unicode_categories
tables of an older Unicode version. The exceptions below were found by
running those components over every code point (tokenizers 0.23):
  HF_CTL   = Cc | Cf | Co, minus CTL_DEL
  HF_MARK  = M*, plus MARK_ADD, minus MARK_DEL (StripAccents: all marks)
  HF_BERT_MN = Mn, plus BMN_ADD, minus BMN_DEL (BertNormalizer strip_accents)
  HF_PUNCT = P* | ASCII punctuation, plus PUNCT_ADD, minus PUNCT_DEL
and NFD_DEL lists characters its normalisation tables do not decompose.
"""
import sys
import unicodedata

BLOCK = 128
WHITE_SPACE = set([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680]
                  + list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

# flag bits: keep in sync with SH_UF_* in tokenizer_impl.h
(F_L, F_N, F_P, F_MN, F_M, F_C, F_WS, F_LOWER, F_DECOMP, F_PC, F_S, F_Z, F_HF_CTL, F_HF_MARK,
 F_HF_PUNCT, F_HF_BERT_MN, F_COMP2) = (1 << i for i in range(17))


def ranges(text):
    out = set()
    for part in text.split(','):
        a, _, b = part.strip().partition('-')
        out.update(range(int(a, 16), int(b or a, 16) + 1))
    return out


CTL_DEL = ranges('0x890-0x891, 0x8E2, 0x110CD, 0x13430-0x13438')
MARK_ADD = ranges('0x1CF2-0x1CF3')
MARK_DEL = ranges(
    '0x7FD, 0x898-0x89F, 0x8CA-0x8D3, 0x9FE, 0xAFA-0xAFF, 0xB55, 0xC04, 0xC3C, 0xD00, 0xD3B-0xD3C, 0xD81, 0xEBA, '
    '0x1715, 0x180F, 0x1ABF-0x1ACE, 0x1CF7, 0x1DF6-0x1DFA, 0xA82C, 0xA8FF, 0x10D24-0x10D27, 0x10EAB-0x10EAC, '
    '0x10F46-0x10F50, 0x10F82-0x10F85, 0x11070, 0x11073-0x11074, 0x110C2, 0x11145-0x11146, 0x111C9, '
    '0x111CE-0x111CF, 0x1133B, 0x1145E, 0x1182C-0x1183A, 0x11930-0x11935, 0x11937-0x11938, 0x1193B-0x1193E, '
    '0x11940, 0x11942-0x11943, 0x119D1-0x119D7, 0x119DA-0x119E0, 0x119E4, 0x11A01-0x11A0A, 0x11A33-0x11A39, '
    '0x11A3B-0x11A3E, 0x11A47, 0x11A51-0x11A5B, 0x11A8A-0x11A99, 0x11D31-0x11D36, 0x11D3A, 0x11D3C-0x11D3D, '
    '0x11D3F-0x11D45, 0x11D47, 0x11D8A-0x11D8E, 0x11D90-0x11D91, 0x11D93-0x11D97, 0x11EF3-0x11EF6, 0x16F4F, '
    '0x16F7F-0x16F87, 0x16FE4, 0x16FF0-0x16FF1, 0x1CF00-0x1CF2D, 0x1CF30-0x1CF46, 0x1E130-0x1E136, 0x1E2AE, '
    '0x1E2EC-0x1E2EF')
PUNCT_ADD = ranges('0x166D, 0x111C9')
PUNCT_DEL = ranges(
    '0x61D, 0x9FD, 0xA76, 0xC77, 0xC84, 0x1B7D-0x1B7E, 0x2E43-0x2E4F, 0x2E52-0x2E5D, 0x10EAD, 0x10F55-0x10F59, '
    '0x10F86-0x10F89, 0x1144B-0x1144F, 0x1145A-0x1145B, 0x1145D, 0x11660-0x1166C, 0x116B9, 0x1183B, '
    '0x11944-0x11946, 0x119E2, 0x11A3F-0x11A46, 0x11A9A-0x11A9C, 0x11A9E-0x11AA2, 0x11C41-0x11C45, '
    '0x11C70-0x11C71, 0x11EF7-0x11EF8, 0x11FFF, 0x12FF1-0x12FF2, 0x16E97-0x16E9A, 0x16FE2, 0x1E95E-0x1E95F')
BMN_ADD = ranges('0x1734')
BMN_DEL = ranges(
    '0x7FD, 0x898-0x89F, 0x8CA-0x8E1, 0x9FE, 0xAFA-0xAFF, 0xB55, 0xC04, 0xC3C, 0xD00, 0xD3B-0xD3C, 0xD81, 0xEBA, '
    '0x180F, 0x1885-0x1886, 0x1ABF-0x1ACE, 0x1DF6-0x1DFB, 0xA82C, 0xA8C5, 0xA8FF, 0xA9BD, 0x10D24-0x10D27, '
    '0x10EAB-0x10EAC, 0x10F46-0x10F50, 0x10F82-0x10F85, 0x11070, 0x11073-0x11074, 0x110C2, 0x111C9, 0x111CF, '
    '0x1123E, 0x1133B, 0x11438-0x1143F, 0x11442-0x11444, 0x11446, 0x1145E, 0x1182F-0x11837, 0x11839-0x1183A, '
    '0x1193B-0x1193C, 0x1193E, 0x11943, 0x119D4-0x119D7, 0x119DA-0x119DB, 0x119E0, 0x11A01-0x11A0A, '
    '0x11A33-0x11A38, 0x11A3B-0x11A3E, 0x11A47, 0x11A51-0x11A56, 0x11A59-0x11A5B, 0x11A8A-0x11A96, '
    '0x11A98-0x11A99, 0x11C30-0x11C36, 0x11C38-0x11C3D, 0x11C3F, 0x11C92-0x11CA7, 0x11CAA-0x11CB0, '
    '0x11CB2-0x11CB3, 0x11CB5-0x11CB6, 0x11D31-0x11D36, 0x11D3A, 0x11D3C-0x11D3D, 0x11D3F-0x11D45, 0x11D47, '
    '0x11D90-0x11D91, 0x11D95, 0x11D97, 0x11EF3-0x11EF4, 0x16F4F, 0x16FE4, 0x1CF00-0x1CF2D, 0x1CF30-0x1CF46, '
    '0x1E000-0x1E006, 0x1E008-0x1E018, 0x1E01B-0x1E021, 0x1E023-0x1E024, 0x1E026-0x1E02A, 0x1E130-0x1E136, '
    '0x1E2AE, 0x1E2EC-0x1E2EF, 0x1E944-0x1E94A')
NFD_DEL = ranges('0x11938')

SBASE, SCOUNT = 0xAC00, 11172


COMP2 = set()  # second characters of composition pairs (filled by main)


def record(cp):
    ch = chr(cp)
    cat = unicodedata.category(ch)
    f = 0
    if cat[0] == 'L': f |= F_L
    if cat[0] == 'N': f |= F_N
    if cat[0] == 'P': f |= F_P
    if cat == 'Pc': f |= F_PC
    if cat[0] == 'S': f |= F_S
    if cat[0] == 'Z': f |= F_Z
    if cat == 'Mn': f |= F_MN
    if cat[0] == 'M': f |= F_M
    if cat[0] == 'C': f |= F_C
    if cp in WHITE_SPACE: f |= F_WS
    if cp in COMP2: f |= F_COMP2
    if cat in ('Cc', 'Cf', 'Co') and cp not in CTL_DEL: f |= F_HF_CTL
    if (cat[0] == 'M' or cp in MARK_ADD) and cp not in MARK_DEL: f |= F_HF_MARK
    if (cat == 'Mn' or cp in BMN_ADD) and cp not in BMN_DEL: f |= F_HF_BERT_MN
    if (cat[0] == 'P' or (cp < 128 and chr(cp) in '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~') or cp in PUNCT_ADD) \
            and cp not in PUNCT_DEL:
        f |= F_HF_PUNCT
    if 0xD800 <= cp <= 0xDFFF:
        return (f, 0), None, None
    low = ch.lower()
    if low != ch: f |= F_LOWER
    dec = None
    if not (SBASE <= cp < SBASE + SCOUNT) and cp not in NFD_DEL:
        d = unicodedata.normalize('NFD', ch)
        if d != ch:
            f |= F_DECOMP
            dec = [ord(c) for c in d]
    return (f, unicodedata.combining(ch)), ([ord(c) for c in low] if low != ch else None), dec


def main():
    out = sys.stdout
    # composition pairs: primary composites with a two-character decomposition
    comps = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF or SBASE <= cp < SBASE + SCOUNT: continue
        raw = unicodedata.decomposition(chr(cp))
        if not raw or raw.startswith('<'): continue
        parts = [int(x, 16) for x in raw.split()]
        if len(parts) != 2: continue
        if cp not in NFD_DEL and unicodedata.normalize('NFC', chr(parts[0]) + chr(parts[1])) == chr(cp):
            comps.append((parts[0], parts[1], cp))
    comps.sort()
    COMP2.update(b for _, b, _ in comps)
    COMP2.update(range(0x1161, 0x1161 + 21))  # Hangul V
    COMP2.update(range(0x11A8, 0x11A7 + 28))  # Hangul T
    recs = {}
    rec_list = []
    stage2_blocks = {}
    stage1 = []
    stage2 = []
    lowers = []
    decomps = []
    for b in range(0x110000 // BLOCK):
        blk = []
        for cp in range(b * BLOCK, (b + 1) * BLOCK):
            r, low, dec = record(cp)
            if r not in recs:
                recs[r] = len(rec_list)
                rec_list.append(r)
            blk.append(recs[r])
            if low: lowers.append((cp, low))
            if dec: decomps.append((cp, dec))
        key = tuple(blk)
        if key not in stage2_blocks:
            stage2_blocks[key] = len(stage2_blocks)
            stage2.extend(blk)
        stage1.append(stage2_blocks[key])
    assert len(rec_list) < 256 and len(stage2_blocks) < 65536

    w = out.write
    w('/* GENERATED by engine/tokenizer_unicode_gen.py from Python unicodedata %s: do not edit. */\n'
      % unicodedata.unidata_version)
    w('#include "tokenizer_impl.h"\n\n')
    w('const char sh_unicode_version[] = "%s";\n\n' % unicodedata.unidata_version)
    w('/* (flags SH_UF_*, canonical combining class) */\n')
    w('const sh_uc_record sh_uc_records[%d] = {\n' % len(rec_list))
    for f, c in rec_list:
        w('    {0x%05x, %d},\n' % (f, c))
    w('};\n\n')
    w('/* record index block per 128 code points: stage1[cp >> 7] */\n')
    w('const uint16_t sh_uc_stage1[%d] = {\n' % len(stage1))
    for i in range(0, len(stage1), 16):
        w('    ' + ', '.join(str(x) for x in stage1[i:i + 16]) + ',\n')
    w('};\n\n')
    w('/* record index: sh_uc_stage2[stage1[cp >> 7] * 128 + (cp & 127)] */\n')
    w('const uint8_t sh_uc_stage2[%d] = {\n' % len(stage2))
    for i in range(0, len(stage2), 32):
        w('    ' + ','.join(str(x) for x in stage2[i:i + 32]) + ',\n')
    w('};\n\n')

    def mapping(name, items):
        data = []
        w('/* sorted by code point: {cp, offset into %s_data, count} */\n' % name)
        w('const sh_uc_map %s[%d] = {\n' % (name, len(items)))
        for cp, seq in items:
            w('    {0x%x, %d, %d},\n' % (cp, len(data), len(seq)))
            data.extend(seq)
        w('};\n')
        w('const uint32_t %s_data[%d] = {\n' % (name, len(data)))
        for i in range(0, len(data), 12):
            w('    ' + ', '.join('0x%x' % x for x in data[i:i + 12]) + ',\n')
        w('};\n')
        w('const int %s_n = %d;\n\n' % (name, len(items)))

    mapping('sh_uc_lower', lowers)
    mapping('sh_uc_decomp', decomps)
    w('/* sorted by (first, second): canonical composition of primary composites */\n')
    w('const sh_uc_comp sh_uc_comps[%d] = {\n' % len(comps))
    for a, b, c in comps:
        w('    {0x%x, 0x%x, 0x%x},\n' % (a, b, c))
    w('};\n')
    w('const int sh_uc_comps_n = %d;\n' % len(comps))


if __name__ == '__main__':
    main()
