/* clip_tokenizer: CLIP's byte-level BPE tokenizer, as SDXL's two text encoders use it (issue 9 item 2).
 *
 * Two sources of the vocabulary:
 *   - a diffusers tokenizer folder (SDXL's tokenizer/ and tokenizer_2/): vocab.json + merges.txt, plus the optional
 *     special_tokens_map.json and tokenizer_config.json (bos/eos/unk/pad tokens, each a string or an object with
 *     "content"; added_tokens_decoder; model_max_length). This is transformers' CLIPTokenizer;
 *   - open_clip's merges file bpe_simple_vocab_16e6.txt.gz (gzip or plain): the vocabulary is derived from the
 *     merges (256 byte symbols, the same with "</w>", the merged pairs in order, then <start_of_text> and
 *     <end_of_text>), as open_clip's SimpleTokenizer builds it. Padding with id 0, as open_clip pads.
 * Both read the first 48,894 merges after the header line, as both reference tokenizers do.
 *
 * Text processing (identical to open_clip's SimpleTokenizer with the `ftfy` stand-in of the reference
 * environment, i.e. ftfy.fix_text as the identity):
 *   1. html.unescape twice (Python's rules: numeric references with the Windows-1252 remap of 0x80-0x9F, U+FFFD
 *      for surrogates / > U+10FFFF / 0, non-characters and controls dropped; every HTML5 entity name, with the
 *      longest-prefix rule for names that may omit the ';'), then str.strip();
 *   2. every run of regex \s becomes one space, str.strip();
 *   3. str.lower(): all 1:1 mappings, U+0130 -> "i\u0307", and the Greek final sigma (capital sigma after a cased
 *      letter and not before one -> U+03C2), as Python does;
 *   4. CLIP's pattern (compiled with IGNORECASE), left to right: special tokens | 's 't 're 've 'm 'll 'd |
 *      \p{L}+ | one \p{N} | a run of [^\s\p{L}\p{N}]; characters no alternative matches are skipped (whitespace,
 *      and U+0345, which folds to a letter); the classes are read off the regex module itself (clip_unicode.c);
 *   5. each piece -> UTF-8 bytes -> byte symbols (the last one with "</w>") -> lowest-rank merges first.
 * The ftfy and transformers differences: transformers' CLIPTokenizer cleans with ftfy when it is installed
 * (fix_text: NFC, curly quotes to straight, HTML entities only when the text has no '<', ...) and with BERT's
 * BasicTokenizer when not; none of that is reproduced. For ASCII text without '&' all of these agree.
 * A diffusers folder additionally splits the RAW text at its added/special tokens before cleaning, as
 * transformers does: SDXL's tokenizer_2 declares "!" (id 0, its pad token) special, so each "!" in a prompt becomes
 * id 0 there (diffusers issue #4153), where open_clip would give "!</w>" = 256.
 *
 * Encoding to the model input (clip_tokenizer_tokenize): [bos] + the first context-2 ids + [eos], then pad ids up
 * to context (77). The pad id: tokenizer/ pads with eos "<|endoftext|>" (49407), tokenizer_2/ with "!" (0);
 * open_clip pads with 0. */
#ifndef SF_CLIP_TOKENIZER_H
#define SF_CLIP_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>

#define CLIP_TOKENIZER_MERGES 48894           /* 49152 - 256 - 2: what both reference tokenizers read */
#define CLIP_TOKENIZER_MAX_TEXT (1u << 20)    /* longest prompt accepted, bytes */

typedef struct clip_tokenizer clip_tokenizer;

/* A diffusers tokenizer folder (vocab.json + merges.txt [+ special_tokens_map.json, tokenizer_config.json]). */
clip_tokenizer *clip_tokenizer_load_dir(const char *dir, char *err, size_t errlen);
/* open_clip's merges file (gzip or plain text); context 77, pad 0. */
clip_tokenizer *clip_tokenizer_load_bpe(const char *path, char *err, size_t errlen);
void clip_tokenizer_free(clip_tokenizer *t);

/* The ids of a text without start/end tokens. Writes at most max ids into ids; *n gets the full count (which may be
 * larger than max). 0, or -1 with one line in err (invalid UTF-8, text too long). */
int clip_tokenizer_encode(const clip_tokenizer *t, const char *text, int32_t *ids, size_t max, size_t *n, char *err,
                          size_t errlen);
/* The model input: ids[context] as described above. *untruncated (if not NULL) gets 2 + the encoded count, so
 * the caller can warn when it exceeds the context (as diffusers does). 0 or -1 with err. */
int clip_tokenizer_tokenize(const clip_tokenizer *t, const char *text, int32_t *ids, size_t *untruncated,
                            char *err, size_t errlen);

/* Pad with another id (e.g. the end token, to give open_clip's merges file the padding of SDXL's tokenizer/, as
 * the original single-file pipeline's CLIP-L tokenizer pads). 0, or -1 with err when no token has that id. */
int clip_tokenizer_set_pad(clip_tokenizer *t, int32_t id, char *err, size_t errlen);

int clip_tokenizer_context(const clip_tokenizer *t);   /* 77 */
int32_t clip_tokenizer_bos(const clip_tokenizer *t);
int32_t clip_tokenizer_eos(const clip_tokenizer *t);
int32_t clip_tokenizer_pad(const clip_tokenizer *t);
size_t clip_tokenizer_vocab_size(const clip_tokenizer *t);   /* 1 + the largest id */
/* The token text of an id ("</w>" kept, byte symbols as CLIP writes them), or NULL if none has that id. */
const char *clip_tokenizer_token(const clip_tokenizer *t, int32_t id);
const char *clip_tokenizer_label(const clip_tokenizer *t);

/* The cleaning of steps 1-3 alone, for tests: UTF-8 in, UTF-8 out (malloc'ed; NULL with err on invalid UTF-8). */
char *clip_tokenizer_clean(const char *text, char *err, size_t errlen);

#endif
