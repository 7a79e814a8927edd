/* The task with reproc: two workers, each ready when it prints "ready"; report their state
 * changes; stop the second (SIGTERM, SIGKILL after 2 s); print its last 3 lines; stop all. */
#include <reproc/reproc.h>
#include <stdio.h>
#include <string.h>

#define WORKERS 2
#define TAIL 3

struct worker {
  reproc_t *proc;
  const char *name;
  char partial[4096];
  size_t used;
  char tail[TAIL][256];
  unsigned lines;
  int ready, exited;
};

static void on_line(struct worker *w, const char *line) {
  snprintf(w->tail[w->lines++ % TAIL], sizeof w->tail[0], "%s", line);
  if (!w->ready && strcmp(line, "ready") == 0) {
    w->ready = 1;
    printf("%s: starting -> running\n", w->name);
  }
}

/* Reads what a worker wrote, splits it into lines. Returns <0 at end of output. */
static int drain(struct worker *w) {
  char buf[4096];
  int n = reproc_read(w->proc, REPROC_STREAM_OUT, (uint8_t *)buf, sizeof buf);
  if (n < 0) return n;
  for (int i = 0; i < n; i++) {
    if (buf[i] == '\n' || w->used == sizeof w->partial - 1) {
      w->partial[w->used] = '\0';
      on_line(w, w->partial);
      w->used = 0;
    } else {
      w->partial[w->used++] = buf[i];
    }
  }
  return 0;
}

/* Polls every worker once: output and exits. */
static int pump(struct worker *ws, int timeout_ms) {
  reproc_event_source src[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    src[i] = (reproc_event_source){ws[i].proc, REPROC_EVENT_OUT | REPROC_EVENT_EXIT, 0};
  int r = reproc_poll(src, WORKERS, timeout_ms);
  if (r < 0) return r == REPROC_ETIMEDOUT ? 0 : r;
  for (int i = 0; i < WORKERS; i++) {
    if (src[i].events & REPROC_EVENT_OUT) drain(&ws[i]);
    if ((src[i].events & REPROC_EVENT_EXIT) && !ws[i].exited) {
      ws[i].exited = 1;
      int status = reproc_wait(ws[i].proc, 0);
      printf("%s: exited (status %d)\n", ws[i].name, status);
    }
  }
  return 0;
}

int main(void) {
  const char *argv[] = {"sh", "-c", "echo works; echo ready; while sleep 0.1; do echo works; done",
                        NULL};
  reproc_stop_actions stop = {{REPROC_STOP_TERMINATE, 2000}, {REPROC_STOP_KILL, 2000},
                              {REPROC_STOP_NOOP, 0}};
  reproc_options options = {.redirect.err.type = REPROC_REDIRECT_STDOUT,
                            .stop = stop, .nonblocking = true};
  struct worker ws[WORKERS] = {{.name = "alpha"}, {.name = "beta"}};
  for (int i = 0; i < WORKERS; i++) {
    ws[i].proc = reproc_new();
    int r = reproc_start(ws[i].proc, argv, options);
    if (r < 0) {
      fprintf(stderr, "start %s: %s\n", ws[i].name, reproc_strerror(r));
      return 1;
    }
  }
  for (int waited = 0; !(ws[0].ready && ws[1].ready); waited += 100) {
    if (waited > 10000 || pump(ws, 100) < 0) {
      fprintf(stderr, "the workers did not get ready\n");
      return 1;
    }
  }
  pump(ws, 300); /* let some output in */
  int status = reproc_stop(ws[1].proc, stop);
  ws[1].exited = 1;
  printf("beta: stopped (status %d)\n", status);
  while (drain(&ws[1]) == 0) {
  }
  printf("beta's last lines:\n");
  for (unsigned i = ws[1].lines > TAIL ? ws[1].lines - TAIL : 0; i < ws[1].lines; i++)
    printf("%s\n", ws[1].tail[i % TAIL]);
  for (int i = 0; i < WORKERS; i++) reproc_destroy(ws[i].proc);
  return 0;
}
