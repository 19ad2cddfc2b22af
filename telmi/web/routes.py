"""Every URL of Telmi, named, in one place."""

from __future__ import annotations

from aiohttp import web

from telmi.paths import STATIC_DIR
from telmi.web import health, rooms
from telmi.web.api import (
    acts,
    availability,
    bookings,
    consultations,
    directory,
    expertise,
    forms,
    openapi,
    precall,
    stats,
    tokens,
)
from telmi.web.api import reports as reports_api
from telmi.web.api import residents as residents_api
from telmi.web.pages import (
    admin,
    agenda,
    appointments,
    auth,
    background,
    finess_import,
    form_editor,
    home,
    statistics,
    video,
)
from telmi.web.pages import availability as availability_page
from telmi.web.pages import expertise as expertise_pages
from telmi.web.pages import facilities_admin as facilities_pages
from telmi.web.pages import record_access as record_access_pages
from telmi.web.pages import reports as reports_pages
from telmi.web.pages import residents as residents_pages
from telmi.web.pages import sites as sites_page


def setup_routes(app: web.Application) -> None:
    add = app.router.add_route
    add("GET", "/healthz", health.healthz, name="healthz")

    add("GET", "/", home.home, name="home")
    add("GET", "/login", auth.login_form, name="login")
    add("POST", "/login", auth.login, name="login_submit")
    add("POST", "/logout", auth.logout, name="logout")
    add("GET", "/admin", admin.admin, name="admin")
    add("GET", "/admin/taches", background.job_list, name="admin_jobs")
    access, access_one = "/acces-dossier", r"/acces-dossier/{patient_id:\d+}"
    add("GET", access, record_access_pages.choose, name="record_access_choose")
    add("POST", access, record_access_pages.find, name="record_access_find")
    add("GET", access_one, record_access_pages.show, name="record_access")
    add("GET", access_one + "/export.csv", record_access_pages.export, name="record_access_csv")
    add("GET", "/admin/finess", finess_import.page, name="admin_finess")
    add("POST", "/admin/finess/fichier", finess_import.upload, name="admin_finess_upload")
    add("GET", "/admin/finess/apercu", finess_import.preview, name="admin_finess_preview")
    add("POST", "/admin/finess/appliquer", finess_import.apply, name="admin_finess_apply")
    add("GET", "/admin/formulaires", form_editor.overview, name="admin_forms")
    form_page = r"/admin/formulaires/{specialty_id:\d+}"
    add("GET", form_page, form_editor.edit, name="admin_form")
    add("POST", form_page, form_editor.save, name="admin_form_save")
    fac, fac_one = "/admin/etablissements", r"/admin/etablissements/{facility_id:\d+}"
    add("GET", fac, facilities_pages.facility_list, name="admin_facilities")
    add("POST", fac, facilities_pages.facility_create, name="admin_facility_create")
    add("GET", fac + "/nouveau", facilities_pages.facility_new, name="admin_facility_new")
    add("GET", fac_one, facilities_pages.facility_edit, name="admin_facility")
    add("POST", fac_one, facilities_pages.facility_save, name="admin_facility_save")
    deactivate, reactivate = fac_one + "/desactiver", fac_one + "/reactiver"
    add("POST", deactivate, facilities_pages.facility_deactivate, name="admin_facility_deactivate")
    add("POST", reactivate, facilities_pages.facility_reactivate, name="admin_facility_reactivate")
    spe, spe_one = "/admin/specialites", r"/admin/specialites/{specialty_id:\d+}"
    add("GET", spe, facilities_pages.specialty_list, name="admin_specialties")
    add("POST", spe, facilities_pages.specialty_create, name="admin_specialty_create")
    add("POST", spe_one, facilities_pages.specialty_rename, name="admin_specialty_rename")
    retire, reinstate = spe_one + "/retirer", spe_one + "/retablir"
    add("POST", retire, facilities_pages.specialty_retire, name="admin_specialty_retire")
    add("POST", reinstate, facilities_pages.specialty_reinstate, name="admin_specialty_reinstate")
    add("GET", "/admin/journal", facilities_pages.journal, name="admin_journal")
    add("GET", "/notifications", background.notifications, name="notifications")
    add("POST", "/notifications/lues", background.mark_read, name="notifications_read")

    # Accounts: administration, one-time links, « Mot de passe oublié ? », « Mon compte ».
    from telmi.web.pages import accounts_admin, password

    users, user = "/admin/comptes", r"/admin/comptes/{user_id:\d+}"
    add("GET", users, accounts_admin.accounts, name="accounts_admin")
    add("POST", users + "/inviter", accounts_admin.invite, name="accounts_invite")
    add("GET", user, accounts_admin.edit, name="account_edit")
    add("POST", user, accounts_admin.save, name="account_save")
    add("POST", user + "/desactiver", accounts_admin.disable, name="account_disable")
    add("POST", user + "/activer", accounts_admin.enable, name="account_enable")
    add("POST", user + "/reinitialiser", accounts_admin.send_reset, name="account_reset")
    link = "/compte/lien"  # the token rides in the fragment, then in POSTed forms
    add("GET", link, password.link_landing, name="password_link")
    add("POST", link + "/ouvrir", password.link_form, name="password_link_open")
    add("POST", link, password.link_submit, name="password_link_submit")
    add("GET", "/mot-de-passe-oublie", password.forgot_form, name="password_forgot")
    add("POST", "/mot-de-passe-oublie", password.forgot_submit, name="password_forgot_submit")
    add("GET", "/mon-compte", password.my_account, name="my_account")
    add("POST", "/mon-compte", password.change_password, name="my_account_password")

    new, one = "/rendez-vous/nouveau", r"/rendez-vous/{booking_id:\d+}"
    add("GET", new, appointments.search, name="booking_search")
    add("GET", new + r"/{slot_id:\d+}", appointments.slot_form, name="booking_slot")
    add("POST", new + r"/{slot_id:\d+}", appointments.book, name="booking_slot_submit")
    add("POST", new + r"/{slot_id:\d+}/retenir", appointments.hold, name="booking_slot_hold")
    add("GET", "/rendez-vous", appointments.bookings, name="bookings")
    add("POST", one + "/annuler", appointments.cancel, name="booking_cancel")
    add("GET", one + "/deplacer", appointments.move_form, name="booking_move")
    add("POST", one + "/deplacer", appointments.move, name="booking_move_submit")
    add("GET", "/agenda", agenda.week, name="agenda")
    add("GET", "/statistiques", statistics.statistics, name="statistics")
    add("GET", "/sites-de-la-region", sites_page.overview, name="sites")
    from telmi.web.pages import accessibility  # « Déclaration d'accessibilité » (issue 15)

    add("GET", "/accessibilite", accessibility.statement, name="accessibility")
    add("POST", "/accessibilite", accessibility.feedback, name="accessibility_feedback")
    te, te_one = "/teleexpertise", r"/teleexpertise/{request_id:\d+}"
    add("GET", te, expertise_pages.index, name="expertise")
    add("GET", te + "/nouvelle", expertise_pages.new, name="expertise_new")
    add("GET", te_one, expertise_pages.show, name="expertise_thread")
    for path, handler, name in (
        ("prendre", expertise_pages.take, "expertise_take"),
        ("question", expertise_pages.ask, "expertise_ask"),
        ("reponse", expertise_pages.answer, "expertise_answer"),
        ("decliner", expertise_pages.decline, "expertise_decline"),
        ("complement", expertise_pages.reply, "expertise_reply"),
        ("envoyer", expertise_pages.send, "expertise_send"),
    ):
        add("POST", f"{te_one}/{path}", handler, name=name)
    add("GET", "/test-video", video.test_video, name="test_video")
    add("GET", r"/consultation/{booking_id:\d+}", video.room, name="consultation_room")
    add("GET", "/invitation", video.invitation, name="invitation")
    add("POST", "/api/precall/offer", precall.offer, name="api_precall_offer")

    rule, absence = "/disponibilites/regles", "/disponibilites/absences"
    add("GET", "/disponibilites", availability_page.show, name="availability")
    add("POST", rule, availability_page.add_rule, name="availability_rule_add")
    add(
        "POST",
        rule + r"/{rule_id:\d+}/supprimer",
        availability_page.delete_rule,
        name="availability_rule_delete",
    )
    add("POST", absence, availability_page.add_absence, name="availability_absence_add")
    add(
        "POST",
        absence + r"/{absence_id:\d+}/supprimer",
        availability_page.delete_absence,
        name="availability_absence_delete",
    )

    add("GET", "/api/openapi.json", openapi.openapi, name="api_openapi")
    add("GET", "/api/me", directory.me, name="api_me")
    add("GET", "/api/facilities", directory.list_facilities, name="api_facilities")
    add("GET", "/api/specialties", directory.list_specialties, name="api_specialties")
    add("GET", "/api/tokens", tokens.list_tokens, name="api_tokens")
    add("POST", "/api/tokens", tokens.create_token, name="api_tokens_create")
    add("DELETE", r"/api/tokens/{token_id:\d+}", tokens.revoke_token, name="api_token_revoke")

    rules, exceptions = "/api/availability/rules", "/api/availability/exceptions"
    add("GET", rules, availability.list_rules, name="api_rules")
    add("POST", rules, availability.create_rule, name="api_rules_create")
    add("PUT", rules + r"/{rule_id:\d+}", availability.update_rule, name="api_rule_update")
    add("DELETE", rules + r"/{rule_id:\d+}", availability.delete_rule, name="api_rule_delete")
    add("POST", "/api/availability/preview", availability.preview_rule, name="api_rule_preview")
    add("GET", exceptions, availability.list_exceptions, name="api_exceptions")
    add("POST", exceptions, availability.create_exception, name="api_exceptions_create")
    add(
        "DELETE",
        exceptions + r"/{exception_id:\d+}",
        availability.delete_exception,
        name="api_exception_delete",
    )

    add("GET", "/api/slots", bookings.search_slots, name="api_slots")
    add("POST", r"/api/slots/{slot_id:\d+}/hold", bookings.hold_slot, name="api_slot_hold")
    add("GET", "/api/bookings", bookings.list_bookings, name="api_bookings")
    add("POST", "/api/bookings", bookings.create_booking, name="api_bookings_create")
    add("GET", r"/api/bookings/{booking_id:\d+}", bookings.get_booking, name="api_booking")
    add(
        "POST",
        r"/api/bookings/{booking_id:\d+}/cancel",
        bookings.cancel_booking,
        name="api_booking_cancel",
    )
    add(
        "POST",
        r"/api/bookings/{booking_id:\d+}/reschedule",
        bookings.reschedule_booking,
        name="api_booking_reschedule",
    )

    add("POST", r"/api/bookings/{booking_id:\d+}/join", consultations.join, name="api_booking_join")
    add(
        "POST",
        r"/api/bookings/{booking_id:\d+}/invites",
        consultations.invite,
        name="api_booking_invite",
    )
    add("POST", "/api/invites/redeem", consultations.redeem, name="api_invite_redeem")
    add(
        "POST",
        r"/api/consultations/{consultation_id:\d+}/end",
        consultations.end,
        name="api_consultation_end",
    )
    add("GET", "/ws/rooms/{room_id}", rooms.room_socket, name="room_socket")
    ex = "/api/expertise"
    add("GET", ex, expertise.list_requests, name="api_expertise")
    add("POST", ex, expertise.create, name="api_expertise_create")
    add("GET", ex + r"/{request_id:\d+}", expertise.show, name="api_expertise_show")
    add("POST", ex + r"/{request_id:\d+}/photos", expertise.upload, name="api_expertise_photos")
    for step in ("send", "take", "ask", "reply", "answer", "decline"):
        add(
            "POST",
            ex + r"/{request_id:\d+}/" + step,
            getattr(expertise, step),
            name=f"api_expertise_{step}",
        )
    add("GET", ex + r"/photos/{photo_id:\d+}", expertise.photo, name="api_expertise_photo")
    add(
        "GET",
        ex + r"/photos/{photo_id:\d+}/thumbnail",
        expertise.thumbnail,
        name="api_expertise_thumb",
    )
    add("GET", "/api/acts", acts.list_acts, name="api_acts")
    add("POST", "/api/acts", acts.create_act, name="api_acts_create")
    add("POST", r"/api/acts/{act_id:\d+}/cancel", acts.cancel_act, name="api_act_cancel")
    add("GET", "/api/forms", forms.current_form, name="api_forms")
    add("POST", "/api/forms", forms.define_form, name="api_forms_define")
    add("GET", "/api/stats/acts", stats.acts_stats, name="api_stats_acts")
    add("GET", "/api/stats/monthly-report", stats.monthly_report, name="api_stats_monthly")

    # Residents and consent (issue 13): pages, then the JSON API.
    res, res_one = "/residents", r"/residents/{patient_id:\d+}"
    add("GET", res, residents_pages.index, name="residents")
    add("GET", res + "/nouveau", residents_pages.new, name="resident_new")
    add("POST", res + "/nouveau", residents_pages.create, name="resident_create")
    add("GET", res_one, residents_pages.show, name="resident")
    add("GET", res_one + "/modifier", residents_pages.edit, name="resident_edit")
    add("POST", res_one + "/modifier", residents_pages.update, name="resident_update")
    add(
        "POST",
        r"/rendez-vous/{booking_id:\d+}/consentement",
        appointments.record_consent,
        name="booking_consent",
    )
    add(
        "POST",
        r"/teleexpertise/{request_id:\d+}/consentement",
        expertise_pages.record_consent,
        name="expertise_consent",
    )
    api_res, api_res_one = "/api/residents", r"/api/residents/{patient_id:\d+}"
    add("GET", api_res, residents_api.list_residents, name="api_residents")
    add("POST", api_res, residents_api.create_resident, name="api_residents_create")
    add("GET", api_res_one, residents_api.get_resident, name="api_resident")
    add("PUT", api_res_one, residents_api.update_resident, name="api_resident_update")
    consent_of = r"/api/bookings/{booking_id:\d+}/consent"
    add("GET", consent_of, residents_api.booking_consent, name="api_booking_consent")
    add("POST", consent_of, residents_api.record_booking_consent, name="api_booking_consent_add")
    add(
        "POST",
        r"/api/expertise/{request_id:\d+}/consent",
        residents_api.record_expertise_consent,
        name="api_expertise_consent",
    )

    # Reports (issue 13, points 5 and 6): pages and PDFs, then the JSON API.
    report_page = r"/rendez-vous/{booking_id:\d+}/compte-rendu"
    add("GET", report_page, reports_pages.show, name="booking_report")
    add("POST", report_page, reports_pages.submit, name="booking_report_submit")
    add("POST", report_page + "/addendum", reports_pages.addendum, name="booking_report_addendum")
    add("GET", report_page + ".pdf", reports_pages.booking_pdf, name="booking_report_pdf")
    add(
        "GET",
        r"/teleexpertise/{request_id:\d+}/compte-rendu.pdf",
        reports_pages.expertise_pdf,
        name="expertise_report_pdf",
    )
    report_api = r"/api/bookings/{booking_id:\d+}/report"
    add("GET", report_api, reports_api.get_report, name="api_booking_report")
    add("PUT", report_api, reports_api.save_draft, name="api_booking_report_draft")
    add("POST", report_api + "/sign", reports_api.sign, name="api_booking_report_sign")
    addenda = report_api + "/addenda"
    add("POST", addenda, reports_api.add_addendum, name="api_booking_report_addenda")
    add("GET", report_api + ".pdf", reports_api.pdf, name="api_booking_report_pdf")
    te_report = r"/api/expertise/{request_id:\d+}/report"
    add("GET", te_report, reports_api.get_expertise_report, name="api_expertise_report")
    add("GET", te_report + ".pdf", reports_api.expertise_pdf, name="api_expertise_report_pdf")
    add(
        "POST",
        te_report + "/addenda",
        reports_api.add_expertise_addendum,
        name="api_expertise_report_addenda",
    )

    app.router.add_static("/static", STATIC_DIR, name="static")
