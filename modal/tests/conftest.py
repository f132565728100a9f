"""Test setup: the Modal app's modules on sys.path and a fake `modal` module in sys.modules.

The fake records every call the code makes (``fake_modal.calls``) and keeps just enough state to answer
(sandboxes by id, images, dicts). Nothing here needs the real `modal` package or the network.
"""

from __future__ import annotations

import itertools
import sys
import types
from pathlib import Path

import pytest

MODAL_DIR = Path(__file__).resolve().parent.parent
if str(MODAL_DIR) not in sys.path:
    sys.path.insert(0, str(MODAL_DIR))


class FakeModalError(Exception):
    pass


class FakeNotFoundError(FakeModalError):
    pass


class FakeImage:
    def __init__(self, object_id=None, *, source, ref=None):
        self.object_id = object_id
        self.source = source
        self.ref = ref


class FakeStream:
    def __init__(self, text=""):
        self.text = text

    def read(self):
        return self.text


class FakeProcess:
    def __init__(self, code=0, stdout="", stderr=""):
        self.code = code
        self.stdout = FakeStream(stdout)
        self.stderr = FakeStream(stderr)

    def wait(self):
        return self.code


class FakeSandbox:
    def __init__(self, world, object_id, args, kwargs):
        self.world = world
        self.object_id = object_id
        self.args = args
        self.kwargs = kwargs
        self.returncode = None
        self.terminated = False
        self.files = {}

    def poll(self):
        return self.returncode

    def terminate(self):
        self.world.calls.append(("Sandbox.terminate", self.object_id))
        self.terminated = True
        self.returncode = 137

    def detach(self):
        self.world.calls.append(("Sandbox.detach", self.object_id))

    def snapshot_filesystem(self, timeout=55):
        self.world.calls.append(("Sandbox.snapshot_filesystem", self.object_id, timeout))
        if self.world.fail_next.get("snapshot_filesystem"):
            raise self.world.fail_next.pop("snapshot_filesystem")
        return FakeImage(f"im-snap{next(self.world.ids)}", source="snapshot")

    def open(self, path, mode="r"):
        """The sandbox filesystem API (`Sandbox.open`): files kept in ``self.files``."""
        self.world.calls.append(("Sandbox.open", self.object_id, path, mode))
        sandbox = self

        class FakeFile:
            def write(self, text):
                sandbox.files[path] = sandbox.files.get(path, "") + text

            def close(self):
                pass

        self.files.setdefault(path, "")
        return FakeFile()

    def exec(self, *args, **kwargs):
        self.world.calls.append(("Sandbox.exec", self.object_id, args, kwargs))
        if args[:1] == ("mv",) and len(args) == 3 and args[1] in self.files:
            self.files[args[2]] = self.files.pop(args[1])
        for prefix, result in self.world.exec_results:
            if tuple(args[: len(prefix)]) == tuple(prefix):
                return result
        return FakeProcess()


class FakeModal(types.ModuleType):
    """A stand-in for the `modal` package with the surface the app uses."""

    def __init__(self):
        super().__init__("modal")
        self.reset()
        world = self

        class Sandbox:
            @staticmethod
            def create(*args, **kwargs):
                world.calls.append(("Sandbox.create", args, kwargs))
                if world.fail_next.get("create"):
                    raise world.fail_next.pop("create")
                sb = FakeSandbox(world, f"sb-{next(world.ids)}", args, kwargs)
                world.sandboxes[sb.object_id] = sb
                return sb

            @staticmethod
            def from_id(object_id):
                world.calls.append(("Sandbox.from_id", object_id))
                if object_id not in world.sandboxes:
                    raise FakeNotFoundError(f"Sandbox {object_id} not found")
                return world.sandboxes[object_id]

            @staticmethod
            def list(*, app_id=None, tags=None, client=None):
                world.calls.append(("Sandbox.list", tags))
                for sb in world.sandboxes.values():
                    if sb.returncode is None and all(sb.kwargs.get("tags", {}).get(k) == v for k, v in (tags or {}).items()):
                        yield sb

        class Image:
            @staticmethod
            def from_id(image_id, client=None):
                world.calls.append(("Image.from_id", image_id))
                return FakeImage(image_id, source="from_id")

            @staticmethod
            def from_name(name, *, environment_name=None, client=None):
                world.calls.append(("Image.from_name", name))
                return FakeImage(None, source="from_name", ref=name)

            @staticmethod
            def debian_slim(python_version=None, force_build=False):
                return FakeImageBuilder(world, [("debian_slim", python_version)])

            @staticmethod
            def from_registry(tag, **kwargs):
                return FakeImageBuilder(world, [("from_registry", tag)])

        class Volume:
            @staticmethod
            def from_name(name, *, create_if_missing=False, **kwargs):
                world.calls.append(("Volume.from_name", name, create_if_missing))
                return ("volume", name)

        class Secret:
            @staticmethod
            def from_name(name, **kwargs):
                world.calls.append(("Secret.from_name", name))
                return ("secret", name)

        class Dict:
            @staticmethod
            def from_name(name, *, create_if_missing=False, **kwargs):
                world.calls.append(("Dict.from_name", name, create_if_missing))
                return world.dicts.setdefault(name, {})

        class Cron:
            def __init__(self, cron_string, timezone="UTC"):
                self.cron_string = cron_string

        class App:
            def __init__(self, name=None, **kwargs):
                self.name = name
                self.functions = {}
                world.apps.append(self)

            @staticmethod
            def lookup(name, create_if_missing=False):
                return App(name)

            def function(self, **options):
                def register(fn):
                    wrapped = FakeFunction(world, fn, options)
                    self.functions[fn.__name__] = wrapped
                    return wrapped

                return register

        def concurrent(**options):
            def wrap(fn):
                fn.concurrent_options = options
                return fn

            return wrap

        def asgi_app(**options):
            def wrap(fn):
                fn.asgi_options = options
                return fn

            return wrap

        exception = types.ModuleType("modal.exception")
        exception.Error = FakeModalError
        exception.NotFoundError = FakeNotFoundError

        self.Sandbox, self.Image, self.Volume, self.Secret, self.Dict = Sandbox, Image, Volume, Secret, Dict
        self.Cron, self.App, self.concurrent, self.asgi_app, self.exception = Cron, App, concurrent, asgi_app, exception
        self.is_local = lambda: True

    def reset(self):
        self.calls = []
        self.ids = itertools.count(1)
        self.sandboxes = {}
        self.dicts = {}
        self.apps = []
        self.spawned = []
        self.fail_next = {}
        self.exec_results = []

    def created(self):
        """The (args, kwargs) of every Sandbox.create call."""
        return [(c[1], c[2]) for c in self.calls if c[0] == "Sandbox.create"]


class FakeImageBuilder:
    """Image definitions (chained methods are recorded, nothing is built)."""

    def __init__(self, world, steps):
        self.world = world
        self.steps = steps

    def __getattr__(self, name):
        def step(*args, **kwargs):
            return FakeImageBuilder(self.world, self.steps + [(name, args, kwargs)])

        return step


class FakeFunction:
    def __init__(self, world, fn, options):
        self.world = world
        self.fn = fn
        self.options = options

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def local(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def spawn(self, *args, **kwargs):
        self.world.spawned.append((self.fn.__name__, args, kwargs))
        return types.SimpleNamespace(object_id=f"fc-{next(self.world.ids)}")


FAKE_MODAL = FakeModal()
sys.modules["modal"] = FAKE_MODAL
sys.modules["modal.exception"] = FAKE_MODAL.exception


@pytest.fixture
def fake_modal():
    FAKE_MODAL.reset()
    yield FAKE_MODAL
    FAKE_MODAL.reset()
