# peeka agent library "heap": walking every object the garbage collector tracks
# without stopping the target for the whole walk (shared by inspect and memory).
import gc
import time

CHUNK = 20000            # objects examined between two GIL releases


def tracked_objects(cancelled):
    """Every object the collector tracks, a chunk at a time: between chunks the GIL is released
    (the target's threads run) and the walk ends early once `cancelled` is set. The snapshot
    list pins every object, so it is dropped as soon as the walk ends."""
    objects = gc.get_objects()
    try:
        for i in range(0, len(objects), CHUNK):
            yield objects[i:i + CHUNK]
            if cancelled.is_set():
                return
            time.sleep(0)
    finally:
        del objects
