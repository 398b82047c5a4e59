/* SPDX-License-Identifier: MIT */
/*
 * A model of batchring's slot protocol, checked with spin (model/check.sh,
 * run by CTest as model_slots*; -DHOLD=H adds holding batches, see the
 * second consumer below).
 *
 * It mirrors, step by step:
 *   producer/worker.c   claim_next, take_slot, br__worker_main (the claim
 *                       counter, PENDING(c) records, waiting for the
 *                       slot's lap, LOADING, publishing READY / FAILED,
 *                       a replacement redoing its dead predecessor's batch)
 *   producer/supervisor.c  handle_exit, find_orphan, held_by_live,
 *                       seq_done, the restart budget, spawn,
 *                       record_failure
 *   consumer/gen.c      br_next, release_held, wait_ready (the failure
 *                       check), br_attach (a new consumer taking over
 *                       from a dead one resumes at the first batch not
 *                       released)
 * A worker can die before any of its steps (the `unless` around its
 * body), and so can the consumer. A change to the protocol changes the
 * code and this model together.
 *
 * What spin checks (safety run, with invalid end states):
 *   - no slot is overwritten while the consumer reads it, and a LOADING
 *     slot is only taken over from a dead loader;
 *   - every batch is published at most once, handed out in order, and
 *     handed out twice only when a consumer died holding it unreleased;
 *   - at the end of data every batch was handed out and released: a
 *     batch a dead consumer held is handed to its successor;
 *   - a failure the consumer reads is never being rewritten under it;
 *   - liveness, as an invalid end state: a consumer blocked for good
 *     while no process can move (defect 1 of issue 10: the batch that
 *     nobody will load and nobody reports). Processes that may legitimately
 *     stay blocked when the run is over (workers waiting for a slot, the
 *     supervisor waiting for a death, the killer) wait at end labels; the
 *     consumer never does.
 *
 * -DOLD_RULE restores the supervisor's old rule (the first failure
 * stands): spin must then find the consumer blocked, which shows that the
 * model can fail.
 *
 * Sizes (small, so that spin finishes in seconds): W workers, S slots, N
 * batches, BUDGET = max_restarts, KILLS worker deaths, CKILLS consumer
 * deaths.
 */
#ifndef W
#define W 2
#endif
#ifndef S
#define S 2
#endif
#ifndef N
#define N 4
#endif
#ifndef BUDGET
#define BUDGET 0
#endif
#ifndef KILLS
#define KILLS (BUDGET + 2)
#endif
#ifndef CKILLS
#define CKILLS 1
#endif

/* ring/layout.h: BR_JOB_IDLE, BR_JOB_PENDING, BR_NO_FAILURE, enum br_phase,
 * br__slot_word (lap << 2 | phase; lap = seq / nslots). */
#define IDLE 255
#define PEND 16
#define NOFAIL 255
#define FREE 0
#define LOADING 1
#define READY 2
#define FAILED 3
#define SLOT(q) ((q) % S)
#define WORD(q, ph) (((q) / S) * 4 + (ph))
#define DONE(q) ((q) < cursor || word[SLOT(q)] == WORD(q, READY) || word[SLOT(q)] == WORD(q, FAILED))

/* The shared object (struct br_ring_header, br_slot_desc, br_worker_rec). */
byte claim;                 /* hdr->claim */
byte job[W];                /* workers[i].job */
byte word[S];               /* desc[s].word */
byte cursor;                /* hdr->cursor */
byte restarts;              /* hdr->restarts */
byte fail_seq = NOFAIL;     /* hdr->fail_seq */
byte fail_msg = NOFAIL;     /* hdr->fail_msg: here, the batch it names */
byte kick;                  /* hdr->kick: bumped to wake sleeping workers */
byte sleepers;              /* hdr->slot_sleepers, low half: untimed sleepers */
byte nappers;               /* ... high half: nappers (-DNAPS) */

/* -DKICKS models how workers sleep for a free slot and are woken ([K1],
 * [K2] in ring/ring.c): without it a worker waiting for its slot moves as
 * soon as the slot is FREE (perfect wake-ups), which keeps the runs with
 * deaths small; with it, the sleep has no timeout, so spin checks that
 * the kicks alone wake every worker the consumer waits for.
 * Releases between the consumer's kicks (struct br_consumer kick_every):
 * max(1, nslots / 2).
 * spin explores sequentially consistent interleavings. In the code a
 * release is a release store (br__slot_release), not seq_cst, and the
 * [K1] check that follows a run starts with a seq_cst fence
 * (br__kick_workers): by C11's fence rule that check and the worker's
 * [K2] behave as the two separate steps below, each release before the
 * check, so these interleavings are the code's. Likewise take_slot's
 * CAS from FREE without a load before it is the one atomic step of
 * end_slot. */
#ifndef KICK_EVERY
#define KICK_EVERY ((S / 2 > 0) -> (S / 2) : 1)
#endif
/* Variants that spin must catch (the consumer blocked for good), which
 * shows that the model can fail:
 * -DNO_WAIT_KICK -DKICK_EVERY=3 (with S = 2): the consumer waits without
 *  kicking first, and runs are longer than the ring: a worker asleep for
 *  its slot sleeps through the wait for its batch. (With runs of at most
 *  nslots, as in the code, the S releases between the one a worker waits
 *  for and the consumer's wait for its batch end a run: spin finds the
 *  kick before the wait redundant, a second line of defence.)
 * -DNO_RECHECK: a worker sleeps without loading its slot's word after it
 *  counted itself in slot_sleepers ([K2] without its last load). With the
 *  kick before every wait this is still safe (spin finds nothing): the
 *  kick before the wait is what no wake-up can be lost behind.
 * -DNAPS: a worker's sleep may instead be a nap (br__worker_sleep with
 *  BR_NAPPER_ONE, take_slot in producer/worker.c): counted in the high
 *  half of slot_sleepers (`nappers` here; the same word in the code, so
 *  the consumer loads both in one step), skipped by the run-end kick and
 *  woken only by the kick before a wait. The nap's timeout is not
 *  modelled: no progress may depend on it. Any sleep may be a nap here
 *  (the code naps at most once per slot), a superset of the code's
 *  choices. Must be caught: -DNAPS with -DNO_WAIT_KICK, and -DNAPS with
 *  -DWAIT_KICK_UNTIMED (the kick before a wait tests the untimed half
 *  only, as the run-end kick does). */
#if defined(NAPS) && defined(WAIT_KICK_UNTIMED)
#define WAIT_SLEEPERS (sleepers > 0)
#else
#define WAIT_SLEEPERS (sleepers > 0 || nappers > 0)
#endif

/* The supervisor's own state (struct br_supervisor) and the kernel's. */
bool running[W];            /* s->pids[i] > 0: forked, not reaped */
bool died[W];               /* worker i's process has ended (SIGCHLD) */
bool exit0[W];              /* ... with status 0 */
bool kill[W];               /* a SIGKILL is on its way to worker i */
bool ckill;                 /* ... to the consumer */

/* Ghosts: what the assertions need, no counterpart in the code. */
bool loader_alive[S];       /* the process that moved slot s to LOADING lives */
bool reading[S];            /* the consumer holds the batch in slot s */
byte published[N];
byte handed[N];
bool released[N];
byte may_redo = NOFAIL;     /* batch a dead consumer held unreleased */
bool msg_writing;           /* record_failure is writing fail_msg */
bool cdone;                 /* the consumer has ended (EOF or error) */
byte kills;
byte ckills;

/* producer/worker.c: br__worker_main with claim_next, take_slot and
 * br__fill_slot. first is BR_JOB_IDLE, or the batch a replacement redoes. */
proctype worker(byte i; byte first)
{
    byte c = first;
    bool takeover = (first != IDLE);
    bool loading;
    byte kk, seen;
    bool nap;

    {
        do
        :: if
           :: takeover -> skip
           :: else ->
              /* claim_next: PENDING(c) before the CAS, c after it. */
              c = claim;
retry:
              /* The load of claim has no effect of its own: taken in
               * one step with the PENDING record. */
              atomic {
                  if
                  :: c >= N -> goto finished
                  :: else -> job[i] = c + PEND
                  fi
              };
              atomic {
                  if
                  :: claim == c -> claim = c + 1
                  :: else -> c = claim; goto retry
                  fi
              };
              job[i] = c
           fi;
           /* take_slot: wait for (lap, FREE), or, taking over, accept the
            * dead loader's (lap, LOADING). Not free: br__worker_sleep on
            * the kick word ([K2] in ring.c: count in slot_sleepers, load
            * kick, load the slot word again, sleep while kick is
            * unchanged), each a step of its own. The sleep has no timeout
            * here (the code's 100 ms slices only watch for a dead parent):
            * a worker blocked in it for good while the consumer waits is
            * the invalid end state spin looks for. Blocked for good once
            * the consumer has stopped: br_close kills us then. */
end_slot:
           do
           :: atomic {
                  (word[SLOT(c)] == WORD(c, FREE) ||
                   (takeover && word[SLOT(c)] == WORD(c, LOADING))) ->
                  assert(word[SLOT(c)] == WORD(c, FREE) || !loader_alive[SLOT(c)]);
                  assert(!reading[SLOT(c)]);
                  word[SLOT(c)] = WORD(c, LOADING);
                  loader_alive[SLOT(c)] = true;
                  loading = true;
                  break
              }
#ifdef KICKS
           :: atomic {
                  !(word[SLOT(c)] == WORD(c, FREE) ||
                    (takeover && word[SLOT(c)] == WORD(c, LOADING))) ->
                  seen = word[SLOT(c)]
              };
              if
              :: sleepers++; nap = false
#ifdef NAPS
              :: nappers++; nap = true
#endif
              fi;
              kk = kick;
              if
#ifndef NO_RECHECK
              :: word[SLOT(c)] != seen -> skip
#endif
              :: else ->
end_sleep:        (kick != kk)
              fi;
              if
              :: nap -> nappers--
              :: else -> sleepers--
              fi
#endif
           od;
           takeover = false;
           /* br__fill_slot: the loader runs, then publish (worker.c). */
           atomic {
               assert(word[SLOT(c)] == WORD(c, LOADING) && loading);
               assert(published[c] == 0 && !reading[SLOT(c)]);
               published[c]++;
               loading = false;
               if
               :: word[SLOT(c)] = WORD(c, READY)
#ifndef NO_LOADER_ERRORS
               :: word[SLOT(c)] = WORD(c, FAILED)
#endif
               fi
           }
        od;
finished:
        /* worker_exit: out of work, exit(0). */
        exit0[i] = true
    } unless { kill[i] };
    /* Dead (or exited): the supervisor gets SIGCHLD. */
    atomic {
        if
        :: loading -> loader_alive[SLOT(c)] = false
        :: else -> skip
        fi;
        died[i] = true
    }
}

/* producer/supervisor.c: spawn (job recorded before the fork). */
inline spawn(k, first)
{
    atomic {
        job[k] = first;
        died[k] = false;
        exit0[k] = false;
        kill[k] = false;
        running[k] = true;
        run worker(k, first)
    }
}

/* producer/supervisor.c: record_failure, the rule. The new one: the
 * lowest seq that cannot be delivered wins. OLD_RULE: the first failure
 * stands (defect 1 of issue 10). */
#ifdef OLD_RULE
#define FAIL_WINS(x) (fail_seq == NOFAIL)
#else
#define FAIL_WINS(x) ((x) < fail_seq)
#endif

/* producer/supervisor.c: handle_exit with find_orphan, held_by_live and
 * seq_done, then record_failure. One step up to the wait for rivals and
 * one after it: a dead worker's job is frozen, claim and "done" only
 * grow, and a seq no live worker holds cannot become done, so reading
 * them apart would change no outcome. record_failure writes code and text
 * in one step and fail_seq (release) in the next, so that the consumer
 * can read in between. */
inline handle_exit(k)
{
    atomic {
        running[k] = false;
        has_orphan = false;
        jb = job[k];
        q = (jb >= PEND -> jb - PEND : jb);
        if
        :: jb == IDLE -> skip
        :: jb != IDLE && jb >= PEND && claim <= q -> skip /* its CAS never happened */
        :: else ->
           /* held_by_live: a live rival in PENDING(q) resolves first
            * (waitid tells a dead one, which is not waited for). */
           (k == 0 || !running[0] || died[0] || job[0] != q + PEND);
           (k == 1 || !running[1] || died[1] || job[1] != q + PEND);
#if W > 2
           (k == 2 || !running[2] || died[2] || job[2] != q + PEND);
#endif
           held = (k != 0 && running[0] && job[0] == q) ||
                  (k != 1 && running[1] && job[1] == q)
#if W > 2
                  || (k != 2 && running[2] && job[2] == q)
#endif
                  ;
           if
           :: !held && !DONE(q) -> has_orphan = true
           :: else -> skip
           fi
        fi;
        if
        :: exit0[k] && !has_orphan && claim >= N -> skip /* ran out of work */
        :: else ->
           if
           :: restarts + 1 > BUDGET ->
              /* The budget is spent: fail at the batch this death cost,
               * or at the first one nobody has taken. */
              if
              :: has_orphan -> fq = q
              :: !has_orphan && claim < N -> fq = claim
              :: else -> skip
              fi
           :: else ->
              restarts++;
              if
              :: has_orphan -> spawn(k, q)
              :: !has_orphan -> spawn(k, IDLE)
#ifdef FORK_FAILS
              /* fork fails: the run fails where the replacement would
               * have started. */
              :: has_orphan -> fq = q
              :: !has_orphan && claim < N -> fq = claim
#endif
              fi
           fi
        fi;
        /* record_failure: code and text first. */
        if
        :: fq != NOFAIL && FAIL_WINS(fq) -> msg_writing = true; fail_msg = fq
        :: else -> fq = NOFAIL
        fi;
        jb = 0;
        q = 0;
        held = false;
        has_orphan = false
    };
    /* ... then fail_seq, with release. */
    atomic {
        if
        :: fq != NOFAIL -> msg_writing = false; fail_seq = fq; fq = NOFAIL
        :: else -> skip
        fi
    }
}

/* producer/supervisor.c: supervisor_main's loop, reap_workers. Waiting
 * for SIGCHLD is a legitimate end: the run may be over. */
proctype supervisor()
{
    byte jb, q, fq = NOFAIL;
    bool has_orphan, held;
end_sup:
    do
    :: died[0] && running[0] -> handle_exit(0)
    :: died[1] && running[1] -> handle_exit(1)
#if W > 2
    :: died[2] && running[2] -> handle_exit(2)
#endif
    od
}

#ifndef HOLD
/* consumer/gen.c: br_attach's resume rule, then br_next in a loop
 * (release_held, wait_ready, take). The consumer may die at any step; the
 * next one attaches. It never waits at an end label: blocked for good is
 * the hang spin must find. */
active proctype consumer()
{
    byte seq, held, s, f = NOFAIL;
    bool holding;
    byte rel;                   /* releases since the last kick */
    bool runend;

attach:
    atomic {
        /* br_attach: a consumer that died holding cursor - 1 left it
         * READY (or FAILED) on its lap: resume there. */
        seq = cursor;
        if
        :: seq > 0 && (word[SLOT(seq - 1)] == WORD(seq - 1, READY) ||
                       word[SLOT(seq - 1)] == WORD(seq - 1, FAILED)) ->
           seq = seq - 1;
           may_redo = seq
        :: else -> skip
        fi;
        cursor = seq;
        holding = false;
        rel = 0
    };
    {
        do
        :: /* release_held: (lap + 1, FREE). */
           if
           :: holding ->
              atomic {
                  reading[SLOT(held)] = false;
                  released[held] = true;
                  word[SLOT(held)] = WORD(held + S, FREE);
                  holding = false;
                  /* br__consumer_release: a run of KICK_EVERY releases
                   * ends here? (a local count, no shared load) */
                  rel++;
                  if
                  :: rel >= KICK_EVERY -> rel = 0; runend = true
                  :: else -> runend = false
                  fi
              };
#ifdef KICKS
              /* [K1]: at a run's end, load slot_sleepers and bump kick if
               * any sleeps (merged: a worker that leaves between the two
               * only gets a spurious kick). */
              atomic {
                  if
                  :: runend && sleepers > 0 -> kick++
                  :: else -> skip
                  fi
              }
#endif
           :: else -> skip
           fi;
           if
           :: seq >= N ->
              /* BR_EOF: every batch was handed out and released (one a
               * consumer died holding was handed out again). */
              atomic {
                  s = 0;
                  do
                  :: s < N -> assert(handed[s] > 0 && released[s]); s++
                  :: else -> break
                  od;
                  cdone = true;
                  goto out
              }
           :: else -> skip
           fi;
           /* wait_ready: the slot's word first; not ready: kick the
            * sleeping workers once ([K1]), then wait. The code kicks again
            * before each sleep slice; one kick must do, or spin finds the
            * consumer blocked. */
#if defined(KICKS) && !defined(NO_WAIT_KICK)
           if
           :: word[SLOT(seq)] == WORD(seq, READY) || word[SLOT(seq)] == WORD(seq, FAILED) -> skip
           :: else ->
              if
              :: WAIT_SLEEPERS -> kick++
              :: else -> skip
              fi
           fi;
#endif
           /* Then the failure record (fail_seq with acquire; code and
            * text in a later step). */
           atomic {
               (word[SLOT(seq)] == WORD(seq, READY) || word[SLOT(seq)] == WORD(seq, FAILED) ||
                fail_seq <= seq) ->
               if
               :: word[SLOT(seq)] == WORD(seq, READY) ->
                  /* br_next hands out the batch. */
                  assert(handed[seq] == 0 || seq == may_redo);
                  assert(!released[seq] && published[seq] == 1);
                  handed[seq]++;
                  reading[SLOT(seq)] = true;
                  holding = true;
                  held = seq;
                  seq++;
                  cursor = seq
               :: word[SLOT(seq)] == WORD(seq, FAILED) ->
                  /* BR_ELOADER: the run stops. */
                  cdone = true;
                  goto out
               :: else ->
                  f = fail_seq
               fi
           };
           if
           :: f != NOFAIL ->
              /* BR_EWORKER with the text of the death that lost f. */
              atomic {
                  assert(!msg_writing && fail_msg == f);
                  cdone = true;
                  goto out
              }
           :: else -> skip
           fi
        od
    } unless { ckill };
    /* The consumer died: its batch stays unreleased, the next one
     * attaches. */
    atomic {
        if
        :: holding -> reading[SLOT(held)] = false
        :: else -> skip
        fi;
        ckill = false
    };
    goto attach;
out:
    skip
}

#else /* HOLD */
/* Holding batches (opt.hold = HOLD >= 2; api/next.c, api/hold.c, the
 * "Holding" part of consumer/consumer.c, api/named.c's br_attach). br_next
 * no longer releases: the caller holds up to HOLD batches and gives them
 * back (br_release_seq) in any order, chosen by spin. What is held lives
 * in the ring: a batch below the cursor whose slot still says READY (or
 * FAILED) on its own lap (UNREL). br__consumer_hold_check refuses the next
 * batch with BR_EHELD, before any wait, when HOLD are held or when the
 * cursor's slot still holds batch cursor - S; the caller then releases
 * (the loop's first branch). A consumer that dies leaves its held batches
 * READY; the next one resumes at the first unreleased batch of the window
 * below the cursor (br__consumer_first_unreleased) and skips, up to the
 * dead consumer's cursor (skip_end), those released out of order
 * (br__consumer_skip_released, in br_next and in br__consumer_take).
 *
 * Ghosts: mine[q], the caller holds q; owed[q], a dead consumer held q
 * and its successor has not delivered it again. The promise: each batch
 * released exactly once; a batch a dead consumer held delivered again, to
 * the next consumer, once; a released batch never again; no slot
 * overwritten while its batch is held, by the live consumer or a dead one
 * (reading[] stays set across the death); BR_EHELD only when the caller
 * holds what blocks it (never a dead end); br_release_seq accepts exactly
 * the batches the caller holds.
 *
 * Variants that spin must catch (model/check.sh ... assertion):
 * -DRESUME_AT_CURSOR: takeover resumes at the dead consumer's cursor.
 * -DNO_SKIP: takeover resumes at the first unreleased batch but does not
 *  skip those released out of order (caught as a blocked consumer:
 *  model/check.sh ... violation).
 * Found by this model (model_slots_hold_takeover2, CKILLS=2), and fixed
 * in the code: br_attach stored the first unreleased batch as the ring's
 * cursor, and br__consumer_take stored its cursor during the redelivery,
 * so the dead consumer's cursor (skip_end) was lost when the new consumer
 * died in turn; the third one skipped nothing and waited for good for a
 * batch the first had released out of order. Now the stored cursor never
 * moves back (br_attach leaves it, the take stores max(cursor, skip_end)),
 * so every consumer reads the highest cursor reached and the window below
 * it holds every unreleased batch. -DLOWER_CURSOR is the old code, which
 * model_slots_hold_takeover2_lower_cursor must catch. */
#define UNREL(q) (word[SLOT(q)] == WORD(q, READY) || word[SLOT(q)] == WORD(q, FAILED))
#define LO(q) ((q) > S -> (q) - S : 0)
bool mine[N];
bool owed[N];

active proctype consumer()
{
    byte seq, s, k, r, f = NOFAIL;
    byte nheld;                 /* struct br_consumer nheld */
    byte skip_end;              /* struct br_consumer skip_end */
    byte rel;                   /* releases since the last kick */
    bool runend;

attach:
    atomic {
        /* br_attach: cursor = br__consumer_first_unreleased(ring, cursor),
         * skip_end = the cursor read, and the cursor stored back. */
        skip_end = cursor;
#ifdef RESUME_AT_CURSOR
        seq = cursor;
#else
        seq = LO(cursor);
        do
        :: seq < cursor && !UNREL(seq) -> seq++
        :: else -> break
        od;
#endif
#ifdef LOWER_CURSOR
        cursor = seq;
#endif
        nheld = 0;
        rel = 0;
        s = 0;
    };
    {
        do
        :: /* br_next first skips, up to skip_end, what the consumer
            * before released out of order (br__consumer_skip_released: the
            * local cursor only; br__consumer_take stores it). A released
            * slot never says READY on its own lap again: reading the words
            * apart would change nothing. */
           atomic {
#ifndef NO_SKIP
               do
               :: seq < skip_end && !UNREL(seq) -> seq++
               :: else -> break
               od
#else
               skip
#endif
           };
           if
           :: /* br_release_seq of any batch the caller holds (k: which of
               * them, by rank, chosen by spin). */
              atomic {
                  nheld > 0 ->
                  k = 0;
                  do
                  :: k + 1 < nheld -> k++
                  :: true -> break
                  od;
                  r = LO(seq);
                  do
                  :: r < seq && !mine[r] -> r++
                  :: r < seq && mine[r] && k > 0 -> k--; r++
                  :: r < seq && mine[r] && k == 0 -> break
                  :: r >= seq -> assert(false); break  /* held, outside the window */
                  od;
                  /* br__consumer_release_seq's check accepts it ... */
                  assert(r < seq && seq - r <= S && UNREL(r));
                  /* ... and would refuse every batch the caller does not hold. */
                  s = LO(seq);
                  do
                  :: s < seq -> assert(mine[s] || s == r || !UNREL(s)); s++
                  :: else -> break
                  od;
                  s = 0;
                  /* release_slot: (lap + 1, FREE). */
                  assert(!released[r] && handed[r] > 0 && !owed[r]);
                  released[r] = true;
                  mine[r] = false;
                  reading[SLOT(r)] = false;
                  nheld--;
                  word[SLOT(r)] = WORD(r + S, FREE);
                  k = 0;
                  r = 0;
                  rel++;
                  if
                  :: rel >= KICK_EVERY -> rel = 0; runend = true
                  :: else -> runend = false
                  fi
              };
#ifdef KICKS
              atomic {
                  if
                  :: runend && sleepers > 0 -> kick++
                  :: else -> skip
                  fi;
                  runend = false
              }
#else
              runend = false
#endif
           :: /* br_next: end of data: br_close releases all held
               * (br__consumer_release_all: the unreleased slots of the
               * window), and every batch was handed out and released. */
              atomic {
                  seq >= N ->
                  s = LO(seq);
                  do
                  :: s < seq ->
                     if
                     :: UNREL(s) ->
                        assert(mine[s] && !released[s]);
                        released[s] = true;
                        mine[s] = false;
                        reading[SLOT(s)] = false;
                        word[SLOT(s)] = WORD(s + S, FREE)
                     :: else -> assert(!mine[s])
                     fi;
                     s++
                  :: else -> break
                  od;
                  s = 0;
                  do
                  :: s < N -> assert(handed[s] > 0 && released[s] && !owed[s]); s++
                  :: else -> break
                  od;
                  cdone = true;
                  goto out
              }
           :: /* br_next: br__consumer_hold_check. */
              atomic {
                  seq < N && (nheld >= HOLD || (seq >= S && UNREL(seq - S))) ->
                  /* BR_EHELD: never a dead end, the caller holds what blocks
                   * it and releases it (the first branch). */
                  assert(nheld > 0);
                  assert(seq < S || !UNREL(seq - S) || mine[seq - S])
              }
           :: atomic {
                  seq < N && nheld < HOLD && !(seq >= S && UNREL(seq - S))
              };
              /* wait_ready, as without holding: kick, then the slot's word
               * and the failure record. */
#if defined(KICKS) && !defined(NO_WAIT_KICK)
              if
              :: UNREL(seq) -> skip
              :: else ->
                 if
                 :: WAIT_SLEEPERS -> kick++
                 :: else -> skip
                 fi
              fi;
#endif
              atomic {
                  (UNREL(seq) || fail_seq <= seq) ->
                  if
                  :: word[SLOT(seq)] == WORD(seq, READY) ->
                     /* br__consumer_take. */
                     assert(handed[seq] == 0 || owed[seq]);
                     assert(!released[seq] && published[seq] == 1 && !mine[seq]);
                     handed[seq]++;
                     owed[seq] = false;
                     mine[seq] = true;
                     reading[SLOT(seq)] = true;
                     nheld++;
                     seq++;
#ifndef NO_SKIP
                     do
                     :: seq < skip_end && !UNREL(seq) -> seq++
                     :: else -> break
                     od;
#endif
#ifndef LOWER_CURSOR
                     if
                     :: seq > cursor -> cursor = seq
                     :: else -> skip
                     fi
#else
                     cursor = seq
#endif
                  :: word[SLOT(seq)] == WORD(seq, FAILED) ->
                     /* BR_ELOADER: the run stops. */
                     cdone = true;
                     goto out
                  :: else ->
                     f = fail_seq
                  fi
              };
              if
              :: f != NOFAIL ->
                 atomic {
                     assert(!msg_writing && fail_msg == f);
                     cdone = true;
                     goto out
                 }
              :: else -> skip
              fi
           fi
        od
    } unless { ckill };
    /* The consumer died: what its caller held stays READY in the ring and
     * is owed to the next consumer; no worker may overwrite it (reading
     * stays set). */
    atomic {
        s = 0;
        do
        :: s < N ->
           if
           :: mine[s] -> owed[s] = true; mine[s] = false
           :: else -> skip
           fi;
           s++
        :: else -> break
        od;
        s = 0;
        ckill = false
    };
    goto attach;
out:
    skip
}
#endif /* HOLD */

/* Deaths: any worker before any of its steps, the consumer likewise, up
 * to the bounds (the `unless` escape is taken as soon as its flag is set).
 * Only while the consumer still runs: after it ends, br_close kills
 * everything anyway. */
active proctype killer()
{
end_kill:
    do
    :: atomic { kills < KILLS && !cdone && running[0] && !died[0] && !exit0[0] && !kill[0] ->
                kill[0] = true; kills++ }
    :: atomic { kills < KILLS && !cdone && running[1] && !died[1] && !exit0[1] && !kill[1] ->
                kill[1] = true; kills++ }
#if W > 2
    :: atomic { kills < KILLS && !cdone && running[2] && !died[2] && !exit0[2] && !kill[2] ->
                kill[2] = true; kills++ }
#endif
    :: atomic { ckills < CKILLS && !cdone && !ckill -> ckill = true; ckills++ }
    od
}

init
{
    atomic {
        byte k = 0;
        do
        :: k < S -> word[k] = WORD(0, FREE); k++
        :: else -> break
        od;
        k = 0;
        do
        :: k < W -> spawn(k, IDLE); k++
        :: else -> break
        od;
        run supervisor()
    }
}
