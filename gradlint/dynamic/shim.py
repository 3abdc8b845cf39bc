"""Stand between gradlint and the dynamic worker: fork it, wait for it, end as it ended.

Run as a script, ``python -S shim.py PROGRAM ARGS...`` (no package import, nothing but
``os``), as the child gradlint starts for each file (:mod:`gradlint.dynamic.runner`). When
gradlint could give the child a PID namespace of its own, the worker forked here is PID 1
of it. Otherwise the shim is at least what the worker's ``os.getppid()`` names: a model
file that signals its parent ends its own measurement, not gradlint. (Where the fork server
runs, :mod:`gradlint.dynamic.zygote`, its forked child plays this part.)
"""

import os
import signal
import sys


def main(argv):
    pid = os.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):  # SIGKILL and SIGSTOP: no handler to reset
            pass
        os.kill(os.getpid(), sig)  # end by the same signal, so gradlint can name it
        return 128 + sig
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
