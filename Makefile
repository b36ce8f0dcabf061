# falcon.c: build, test and train.
#   make          build the command-line tools
#   make train    the main job: make data, train a small Falcon, sample from it
#   make test     every test, also under AddressSanitizer + UndefinedBehaviorSanitizer

CC      ?= cc
OPT     ?= -O3 -march=native
WARN     = -Wall -Wextra
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp-simd $(WARN)
LDLIBS   = -lm
# OpenMP is optional: used when the compiler supports it, `make NO_OMP=1` turns it off.
ifndef NO_OMP
OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
endif
SAN      = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
B        = build

BINS  = falcon tokenizer data
TESTS =

.PHONY: all test clean train
all: $(BINS)

$(B) $(B)/san:
	mkdir -p $@

# ---------------------------------------------------------------- shared: JSON
JSON = json.c json.h

# ---------------------------------------------------------------- falcon.c: the model
# falcon links tokenizer.c (sampling from text) and data.c (the shard loader) as libraries.
FALCON_SRC = falcon.c data.c data.h tokenizer.c tokenizer.h unicode_tables.h $(JSON)
FALCON_LINK = data.c tokenizer.c json.c
falcon: $(FALCON_SRC)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -DFALCON_MAIN -o $@ falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/falcon: $(FALCON_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -DFALCON_MAIN -o $@ falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/test_falcon: tests/test_falcon.c tests/test.h $(FALCON_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -o $@ tests/test_falcon.c $(FALCON_LINK) $(LDLIBS)
$(B)/san/test_falcon: tests/test_falcon.c tests/test.h $(FALCON_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -o $@ tests/test_falcon.c $(FALCON_LINK) $(LDLIBS)
TESTS += $(B)/test_falcon $(B)/san/test_falcon tests/t_falcon_cli.sh
TEST_DEPS += falcon $(B)/san/falcon

# ---------------------------------------------------------------- tokenizer.c
TOK_SRC = tokenizer.c tokenizer.h unicode_tables.h $(JSON)
tokenizer: $(TOK_SRC)
	$(CC) $(CFLAGS) $(OPT) -DTOKENIZER_MAIN -o $@ tokenizer.c json.c $(LDLIBS)
$(B)/san/tokenizer: $(TOK_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -DTOKENIZER_MAIN -o $@ tokenizer.c json.c $(LDLIBS)
$(B)/test_tokenizer: tests/test_tokenizer.c tests/test.h $(TOK_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) -o $@ tests/test_tokenizer.c json.c $(LDLIBS)
$(B)/san/test_tokenizer: tests/test_tokenizer.c tests/test.h $(TOK_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) -o $@ tests/test_tokenizer.c json.c $(LDLIBS)
TESTS += $(B)/test_tokenizer $(B)/san/test_tokenizer tests/t_tokenizer.sh
TEST_DEPS += tokenizer $(B)/san/tokenizer

# ---------------------------------------------------------------- data.c
DATA_SRC = data.c data.h tokenizer.c tokenizer.h unicode_tables.h $(JSON)
data: $(DATA_SRC)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -DDATA_MAIN -o $@ data.c tokenizer.c json.c $(LDLIBS)
$(B)/san/data: $(DATA_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -DDATA_MAIN -o $@ data.c tokenizer.c json.c $(LDLIBS)
$(B)/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)
	$(CC) $(CFLAGS) $(OPT) $(OMP) -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
$(B)/san/test_data: tests/test_data.c tests/test.h $(DATA_SRC) | $(B)/san
	$(CC) $(CFLAGS) $(SAN) $(OMP) -o $@ tests/test_data.c tokenizer.c json.c $(LDLIBS)
TESTS += $(B)/test_data $(B)/san/test_data tests/t_data_cli.sh
TEST_DEPS += data tokenizer $(B)/san/data

# ---------------------------------------------------------------- the main job
# Everything from nothing: a synthetic web corpus, a BPE vocabulary learned on it, the refinement pipeline and
# shards, a few minutes of training of the nano preset, and a sample. Smaller: make train DEMO_STEPS=100
DEMO        = runs/demo
DEMO_DOCS  ?= 2000
DEMO_VOCAB ?= 4096
DEMO_STEPS ?= 400
train: $(BINS)
	mkdir -p $(DEMO)
	./data synth --docs $(DEMO_DOCS) -o $(DEMO)/corpus.jsonl
	./tokenizer train --vocab-size $(DEMO_VOCAB) --out $(DEMO)/tokenizer.json $(DEMO)/corpus.jsonl
	./data prepare --tokenizer $(DEMO)/tokenizer.json --val-frac 0.05 --out $(DEMO)/data $(DEMO)/corpus.jsonl
	cp $(DEMO)/tokenizer.json $(DEMO)/data/tokenizer.json
	./falcon train --data $(DEMO)/data --model nano --out $(DEMO)/run -B 8 -T 128 --steps $(DEMO_STEPS) \
		--warmup 20 --lr 3e-3 --eval-every 50 --save-every 200
	./falcon sample -m $(DEMO)/run/latest --prompt "The old teacher" -n 60 --seed 1

# ---------------------------------------------------------------- tests
test: $(BINS) $(TEST_DEPS) $(filter $(B)/%,$(TESTS))
	tests/run.sh $(TESTS)

clean:
	rm -rf $(B) $(BINS)
