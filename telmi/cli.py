"""The `telmi` command: serve, migrate, seed, manage users and API tokens, verify the act log."""

from __future__ import annotations

import argparse
import asyncio
import gc
import getpass
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from scheduling.clock import SystemClock
from telmi import accounts, demo, migrate, values
from telmi.context import Context
from telmi.db import Database
from telmi.errors import TelmiError
from telmi.settings import SETTINGS, Settings, SettingsError


class CliError(Exception):
    """A message for the operator, printed on one line; exit status 1."""


def _run(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _read_password(args: argparse.Namespace) -> str:
    if not args.password_stdin:
        raise CliError("give the password on standard input with --password-stdin")
    if sys.stdin.isatty():
        first = getpass.getpass("Mot de passe : ")
        if getpass.getpass("Confirmer : ") != first:
            raise CliError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


# --- commands ---------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from aiohttp import web

    from telmi.app import create_app
    from telmi.web.access_log import PathOnlyAccessLogger

    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.no_jobs:
        settings = settings.replace(jobs=False)
    host, port = args.host or settings.host, args.port or settings.port
    print(f"Telmi sert sur http://{host}:{port} (base : {settings.database_url.split('@')[-1]})")
    app = create_app(settings)
    app.on_startup.append(_freeze_startup_objects)
    web.run_app(
        app,
        host=host,
        port=port,
        access_log_class=PathOnlyAccessLogger,
        print=None,
    )


async def _freeze_startup_objects(app: Any) -> None:
    """What the server made to start (modules, mappers, schemas, templates, the pool) lives
    as long as it does: out of the cyclic collector's reach, a full collection scans what
    the requests left, not them. Measured in `telmi bench mixed`: collections of 145-170 ms,
    a dozen in two minutes, were the p99 at half load."""
    gc.collect()
    gc.freeze()


def cmd_worker(settings: Settings, args: argparse.Namespace) -> None:
    from telmi.worker import run_worker

    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    print("Telmi : tâches de fond seulement (arrêt : Ctrl-C)", flush=True)
    asyncio.run(run_worker(settings, SystemClock()))


def cmd_backup(settings: Settings, args: argparse.Namespace) -> None:
    from telmi import backup

    path = asyncio.run(backup.backup(settings, now=SystemClock().now()))
    print(f"backup written: {path} (integrity ok; last {settings.backup_keep} kept)")


def cmd_restore(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from telmi import backup

    asyncio.run(backup.restore(settings, Path(args.file)))
    print(f"database restored from {args.file}")


def cmd_db(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "upgrade":
        _run(settings, lambda db: migrate.upgrade(db, args.revision or "head", settings=settings))
        print(f"database at revision {args.revision or migrate.head_revision()}")
    elif args.action == "downgrade":
        if not args.revision:
            raise CliError("downgrade needs a revision (use 'base' to drop everything)")
        _run(settings, lambda db: migrate.downgrade(db, args.revision, settings=settings))
        print(f"database at revision {args.revision}")
    else:
        current = _run(settings, migrate.current_revision)
        print(f"current: {current}  head: {migrate.head_revision()}")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    if settings.env == "production":
        raise CliError("refusing to load demo accounts with TELMI_ENV=production")

    from telmi import demo_activity, demo_history

    def say(line: str) -> None:
        print(line, flush=True)

    async def work(db: Database) -> tuple[dict[str, int], dict[str, int]]:
        clock = SystemClock()
        async with db.write() as session:
            created = await demo.load(session, now=clock.now(), progress=say)
        say("Historique d'activité 2017 → hier (journal des actes, chaîné)")
        created["acts"] = await demo_history.load_history(
            db,
            now=clock.now(),
            tz=settings.tz,
            secret=settings.secret_key,
            scale=args.history_scale,
            progress=say,
        )
        say("Activité du mois : disponibilités, rendez-vous, téléexpertises, notifications")
        activity = await demo_activity.load_activity(
            db, clock=clock, settings=settings, progress=say
        )
        return created, activity

    created, activity = _run(settings, work)
    if not any(created.values()) and not any(activity.values()):
        print("Données de démonstration déjà présentes : rien à ajouter.")
    else:
        print(
            f"Créés : {created['facilities']} établissements, "
            f"{created['users'] + activity['users']} comptes, "
            f"{activity['residents']} résidents, "
            f"{_count(created['acts'] + activity['acts'])} actes, "
            f"{_count(activity['slots'])} créneaux, {activity['bookings']} rendez-vous, "
            f"{activity['expertise_requests']} demandes de téléexpertise, "
            f"{activity['notifications']} notifications."
        )
    print_demo_logins()


def _count(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def print_demo_logins() -> None:
    print(f"\nComptes de démonstration (mot de passe : {demo.DEMO_PASSWORD})")
    for login in demo.LOGINS:
        print(f"  {login.role.value:<11} {login.email:<26} {login.description}")
    nurse, doctor = (next(x.email for x in demo.LOGINS if x.role is r) for r in demo.CALL_ROLES)
    print(
        f"\nVisio : {nurse}, « Mes rendez-vous » → « Rejoindre la consultation » ; "
        f"l'autre côté dans une fenêtre privée : {doctor}, « Mon agenda »."
    )


def cmd_user(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "add":
        password = _read_password(args)

        async def add(db: Database) -> int:
            async with db.write() as session:
                user = await accounts.create_user(
                    session,
                    email=args.email,
                    full_name=args.name or args.email,
                    role=args.role,
                    password=password,
                    facility_finess=args.facility,
                    specialty_code=args.specialty,
                    rpps=args.rpps,
                    now=SystemClock().now(),
                )
                return user.id

        print(f"user {args.email} created (id {_run(settings, add)})")
    elif args.action == "disable":

        async def disable(db: Database) -> None:
            async with db.write() as session:
                user = await accounts.user_by_email(session, args.email)
                await accounts.disable_user(session, user, now=_now())

        _run(settings, disable)
        print(f"user {args.email} disabled; sessions and tokens revoked")


def _now() -> datetime:
    return SystemClock().now()


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    if args.action == "create":

        async def create(db: Database) -> str:
            async with db.write() as session:
                user = await accounts.user_by_email(session, args.email)
                new = values.parse(accounts.NewToken, {"name": args.name})
                _, raw = await accounts.create_token(session, Context(user, _now()), new)
                return raw

        print(_run(settings, create))
    elif args.action == "list":

        async def listing(db: Database) -> list[Any]:
            async with db.read() as session:
                return await accounts.list_tokens(
                    session, await accounts.user_by_email(session, args.email)
                )

        for token in _run(settings, listing):
            state = "revoked" if token.revoked_at else "active"
            print(f"{token.id:>5}  {token.prefix}…  {state:<8} {token.name}")
    elif args.action == "revoke":

        async def revoke(db: Database) -> None:
            async with db.write() as session:
                await accounts.revoke_token(session, Context(None, _now()), args.id)

        _run(settings, revoke)
        print(f"token {args.id} revoked")


def cmd_acts(settings: Settings, args: argparse.Namespace) -> None:
    from telmi import acts
    from telmi.bench.common import progress

    async def verify(db: Database) -> acts.Verdict:
        async with db.read() as session:
            return await acts.verify(
                session, progress=lambda done, total: progress("acts checked", done, total)
            )

    verdict = _run(settings, verify)
    if verdict.broken_id is not None:
        raise CliError(
            f"act chain broken at act {verdict.broken_id}: {verdict.problem} "
            f"({verdict.checked} acts before it are intact)"
        )
    if verdict.rollup_mismatches:
        raise CliError(
            f"the chain of {verdict.checked} acts is intact, but {verdict.rollup_mismatches} "
            "cells of the monthly rollup differ from the log"
        )
    print(f"act chain intact: {verdict.checked} acts; monthly rollup matches the log")


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    from telmi import rotation
    from telmi.vault import VaultError, generate_key

    if args.action == "generate":
        key_id = args.id or _now().strftime("k%Y%m%d")
        try:
            print(generate_key(key_id))
        except VaultError as exc:
            raise CliError(str(exc)) from None
        print(
            "Placez-la en tête de TELMI_DATA_KEY (les anciennes clés après, séparées par des "
            "virgules), redémarrez Telmi, puis lancez `telmi keys rotate`.",
            file=sys.stderr,
        )
        return

    vault = settings.vault

    def say(done: int, total: int) -> None:
        print(f"{_count(done)}/{_count(total)} résidents re-chiffrés", flush=True)

    try:
        done = _run(
            settings,
            lambda db: rotation.reseal(db, vault, now=_now(), batch=args.batch, progress=say),
        )
    except VaultError as exc:
        raise CliError(str(exc)) from None
    if done == 0:
        print(f"Tous les résidents sont déjà chiffrés avec la clé « {vault.current} ».")
    else:
        print(
            f"{_count(done)} {'résidents re-chiffrés' if done > 1 else 'résident re-chiffré'} "
            f"avec la clé « {vault.current} » : "
            "les anciennes clés peuvent quitter TELMI_DATA_KEY."
        )


def cmd_bench(settings: Settings, args: argparse.Namespace) -> None:
    from telmi.bench import booking as bench
    from telmi.bench import stats as stats_bench

    logging.getLogger("alembic").setLevel(logging.WARNING)  # scratch migrations: not news

    if args.what == "finess":
        from telmi.bench import finess as finess_bench

        ok = asyncio.run(finess_bench.bench_finess(lines=args.lines))
    elif args.what == "signaling":
        from telmi.bench import signaling as signaling_bench

        ok = asyncio.run(
            signaling_bench.bench_signaling(
                pairs=args.pairs, messages=args.messages, idle=args.idle
            )
        )
    elif args.what == "stats":
        count = args.acts or (5_000_000 if args.backend == "postgresql" else 200_000)
        ok = asyncio.run(
            stats_bench.bench_stats(
                args.backend, acts_count=count, runs=args.runs, postgres_url=args.postgres_url
            )
        )
    elif args.what in ("mixed", "pages"):
        from telmi.bench import mixed as mixed_bench
        from telmi.bench import pages as pages_bench
        from telmi.bench.region import Sizes

        sizes = Sizes(
            facilities=args.facilities,
            specialists=args.specialists,
            weeks=args.weeks,
            past_bookings=args.past_bookings,
            residents=args.residents,
            staff_facilities=min(20, args.facilities),
            clients=getattr(args, "clients", 1),
        )
        if args.what == "mixed":
            ok = asyncio.run(
                mixed_bench.bench_mixed(
                    args.backend,
                    clients=args.clients,
                    seconds=args.seconds,
                    runs=args.runs,
                    sizes=sizes,
                    postgres_url=args.postgres_url,
                    vault=settings.vault,
                    profile=args.py_spy,
                )
            )
        else:
            ok = asyncio.run(
                pages_bench.bench_pages(
                    args.backend,
                    requests=args.requests,
                    sizes=sizes,
                    postgres_url=args.postgres_url,
                    vault=settings.vault,
                    profile=args.py_spy,
                )
            )
    elif args.what == "booking":
        ok = asyncio.run(
            bench.bench_booking(
                args.backend,
                clients=args.clients,
                bookings=args.bookings,
                contended_slots=args.contended_slots,
                postgres_url=args.postgres_url,
                vault=settings.vault,
            )
        )
    else:
        ok = asyncio.run(
            bench.bench_search(
                args.backend,
                specialists=args.specialists,
                weeks=args.weeks,
                queries=args.queries,
                clients=args.clients,
                postgres_url=args.postgres_url,
                vault=settings.vault,
            )
        )
    if not ok:
        raise CliError("benchmark checks failed (see above)")


def cmd_import_finess(settings: Settings, args: argparse.Namespace) -> None:
    from pathlib import Path

    from telmi import finess

    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    departements = [d for d in (args.departement or "").split(",") if d.strip()]

    def say(lines: int) -> None:
        print(f"{finess.count(lines)} lignes lues…", flush=True)

    extract = finess.read_extract(data, filename=path.name, strict=args.strict, progress=say)

    async def work(db: Database) -> finess.Plan:
        now = _now()
        if args.dry_run:
            async with db.read() as session:
                return await finess.plan(
                    session, extract, region=args.region, departements=departements, now=now
                )
        async with db.write() as session:
            planned, _ = await finess.import_extract(
                session, Context(None, now), extract, region=args.region, departements=departements
            )
            return planned

    planned = _run(settings, work)
    for line in finess.describe(planned):
        print(line)
    if args.dry_run:
        print("Aperçu seulement (--dry-run) : rien n'a été écrit.")
    elif planned.writes_nothing:
        print("Import enregistré : aucun changement.")
    else:
        print("Import enregistré.")


def cmd_settings(settings: Settings, args: argparse.Namespace) -> None:
    for setting in SETTINGS:
        print(f"{setting.env:<36} default {setting.default!r}\n    {setting.help}")


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telmi", description="Telmi, plateforme de télémédecine")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the web application")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--no-jobs", action="store_true", help="leave background jobs to others")
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run the background jobs only (no web server)")
    worker.set_defaults(func=cmd_worker)
    sub.add_parser("backup", help="online backup of the SQLite database").set_defaults(
        func=cmd_backup
    )
    restore = sub.add_parser("restore", help="restore the SQLite database from a backup")
    restore.add_argument("file")
    restore.set_defaults(func=cmd_restore)

    db = sub.add_parser("db", help="database migrations")
    db.add_argument("action", choices=["upgrade", "downgrade", "current"])
    db.add_argument("revision", nargs="?")
    db.set_defaults(func=cmd_db)

    demo_cmd = sub.add_parser("demo", help="load demo data (idempotent)")
    demo_cmd.add_argument(
        "--history-scale",
        type=float,
        default=1.0,
        help="fraction of the 2017-today act history to write (default 1: about 240,000 acts)",
    )
    demo_cmd.set_defaults(func=cmd_demo)

    user = sub.add_parser("user", help="manage accounts")
    user_sub = user.add_subparsers(dest="action", required=True)
    add = user_sub.add_parser("add", help="create an account")
    add.add_argument("email")
    add.add_argument("--role", required=True, choices=["staff", "specialist", "regional", "admin"])
    add.add_argument("--name", help="full name")
    add.add_argument("--facility", metavar="FINESS")
    add.add_argument("--specialty", metavar="CODE")
    add.add_argument("--rpps", metavar="N")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    disable = user_sub.add_parser("disable", help="disable an account, revoking its sessions")
    disable.add_argument("email")
    user.set_defaults(func=cmd_user)

    token = sub.add_parser("token", help="personal API tokens")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = token_sub.add_parser("create", help="create a token and print it once")
    create.add_argument("email")
    create.add_argument("--name", default="", help="what the token is for")
    token_sub.add_parser("list", help="list a user's tokens").add_argument("email")
    token_sub.add_parser("revoke", help="revoke a token by id").add_argument("id", type=int)
    token.set_defaults(func=cmd_token)

    acts = sub.add_parser("acts", help="the act log")
    acts_sub = acts.add_subparsers(dest="action", required=True)
    acts_sub.add_parser("verify", help="recompute the hash chain and check the rollup")
    acts.set_defaults(func=cmd_acts)

    keys = sub.add_parser("keys", help="TELMI_DATA_KEY: new keys, rotation of residents' identity")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    keys_sub.add_parser("generate", help="print a new id:key entry").add_argument(
        "--id", help="key id, 1-16 of A-Z a-z 0-9 _ - (default: k + today's date)"
    )
    keys_sub.add_parser(
        "rotate", help="re-encrypt every resident not under the first (current) key"
    ).add_argument("--batch", type=int, default=200, help="residents per transaction")
    keys.set_defaults(func=cmd_keys)

    bench = sub.add_parser("bench", help="benchmarks against a scratch database and a real server")
    bench_sub = bench.add_subparsers(dest="what", required=True)
    for name, helptext in (
        ("booking", "bookings per second and latency over HTTP"),
        ("search", "free-slot search latency"),
        ("stats", "statistics over millions of acts, and appends per second"),
        ("signaling", "relay throughput beside a bare aiohttp relay, idle memory, aiortc connect"),
        ("mixed", "staff's search/list/book/cancel/reschedule mix on a region after a year"),
        ("pages", "server CPU and p95 of the busiest pages as their users"),
    ):
        b = bench_sub.add_parser(name, help=helptext)
        b.add_argument("--backend", choices=["postgresql", "sqlite"], default="postgresql")
        b.add_argument(
            "--postgres-url", help="server to create the scratch database on (default: local)"
        )
        if name == "signaling":
            b.add_argument("--pairs", type=int, default=50, help="client pairs relaying frames")
            b.add_argument("--messages", type=int, default=2000, help="frames per pair")
            b.add_argument("--idle", type=int, default=5000, help="idle participants for memory")
            continue
        if name == "stats":
            b.add_argument(
                "--acts", type=int, help="acts to generate (default 5,000,000; 200,000 on SQLite)"
            )
            b.add_argument("--runs", type=int, default=5, help="timed runs of each query")
            continue
        if name in ("mixed", "pages"):
            b.add_argument("--facilities", type=int, default=40)
            b.add_argument("--specialists", type=int, default=25)
            b.add_argument("--weeks", type=int, default=8, help="weeks of slots ahead")
            b.add_argument("--past-bookings", type=int, default=20_000, help="over the past year")
            b.add_argument("--residents", type=int, default=25, help="per facility")
            b.add_argument(
                "--py-spy",
                metavar="FILE",
                help="py-spy the server (mixed: run 1 at saturation) into FILE",
            )
            if name == "pages":
                b.add_argument("--requests", type=int, default=200, help="per page")
                continue
            b.add_argument("--clients", type=int, default=50, help="staff of 20 facilities")
            b.add_argument("--seconds", type=float, default=30, help="per phase")
            b.add_argument("--runs", type=int, default=2, help="runs on one server (for RSS)")
            continue
        b.add_argument("--clients", type=int, default=100 if name == "booking" else 1)
        if name == "booking":
            b.add_argument("--bookings", type=int, default=5000)
            b.add_argument("--contended-slots", type=int, default=20)
        else:
            b.add_argument("--specialists", type=int, default=2000)
            b.add_argument("--weeks", type=int, default=8)
            b.add_argument("--queries", type=int, default=2000)
    bench_sub.add_parser(
        "finess", help="FINESS import of a generated national-size extract on SQLite"
    ).add_argument("--lines", type=int, default=100_000, help="structureet lines to generate")
    bench.set_defaults(func=cmd_bench)

    finess_cmd = sub.add_parser("import-finess", help="import an etalab FINESS extract")
    finess_cmd.add_argument("file", help="the extract (etalab cs1100502 or cs1100507)")
    finess_cmd.add_argument("--region", metavar="CODE", help="INSEE region code, e.g. 27")
    finess_cmd.add_argument("--departement", metavar="LIST", help="départements, e.g. 21,25")
    finess_cmd.add_argument("--dry-run", action="store_true", help="preview, write nothing")
    finess_cmd.add_argument(
        "--strict", action="store_true", help="refuse the whole file at its first bad line"
    )
    finess_cmd.set_defaults(func=cmd_import_finess)

    sub.add_parser("settings", help="list TELMI_* settings").set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"telmi: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        args.func(settings, args)
    except (CliError, TelmiError, migrate.DatabaseNotMigrated) as exc:
        print(f"telmi: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
