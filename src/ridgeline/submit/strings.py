"""The page's words, in English and Spanish (docs/self-submission.md says how they were
checked against what Take It Down and StopNCII promise and explain).

Plain and calm: short sentences, no blame, no pressure; say what happens and what does
not, the limits included, and that the person can stop at any point. Every language
has every key (tests/test_selfsubmit.py checks it).
"""

from __future__ import annotations

LANGUAGES: dict[str, str] = {"en": "English", "es": "Español"}
DEFAULT_LANGUAGE = "en"

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Protect your images: send fingerprints, not pictures",
        "intro": (
            "If intimate images or videos of you have been shared, or you are afraid they "
            "will be, this page can help stop them spreading on services that check "
            "uploads against this list. You are in control: nothing is sent until you "
            "press the send button, and you can stop at any time."
        ),
        "how_title": "How it works",
        "how_1": "Choose the photos or videos on this device.",
        "how_2": (
            "This page makes a fingerprint of each one, here on your device. A fingerprint "
            "is a short code; nobody can turn it back into the picture."
        ),
        "how_3": (
            "You see exactly what would be sent: the fingerprints only. Your pictures and "
            "videos stay on your device and nobody looks at them."
        ),
        "how_4": (
            "You get a case number. With it you can check your case or take every "
            "fingerprint back later."
        ),
        "limits_title": "What this can and cannot do",
        "limit_exact": (
            "Services that take part compare new uploads with the fingerprints. A match "
            "is looked at by a person there before anything happens; nothing is removed "
            "automatically because of this list."
        ),
        "limit_edits": (
            "Exact copies are found best. A picture that was cropped, filtered or heavily "
            "edited may not match; you can add those versions too."
        ),
        "limit_private": (
            "It cannot reach private or end-to-end encrypted messages, or services that "
            "do not take part. If something is already online, reporting it to that "
            "service is still worth doing."
        ),
        "limit_post": "If you post these pictures yourself later, they may be flagged too.",
        "limit_own": (
            "Use copies you already have on this device. Please do not download, save or "
            "forward pictures in order to use this page, and do not try it with test "
            "pictures: whatever you send goes on the list. You do not need to give your "
            "name or any contact details."
        ),
        "help_title": "Other help",
        "help_minor": (
            "If you were under 18 in the pictures, NCMEC's Take It Down "
            "(takeitdown.ncmec.org) works in the same way."
        ),
        "help_adult": (
            "If you were 18 or older, StopNCII.org works in the same way and reaches many "
            "large platforms."
        ),
        "help_threat": (
            "If someone is threatening you, you do not have to deal with it alone: a local "
            "support service or the police can help. Keep the messages."
        ),
        "choose_title": "1. Choose photos or videos",
        "choose_label": "Photos or videos on this device",
        "choose_note": ("They are read only by this page, on this device. Nothing is uploaded."),
        "hashing": "Making fingerprints…",
        "table_file": "File (stays on your device)",
        "table_kind": "Kind",
        "table_md5": "MD5 fingerprint",
        "table_pdq": "PDQ fingerprint (for photos)",
        "table_send": "Send",
        "kind_image": "photo",
        "kind_video": "video",
        "kind_other": "file",
        "no_pdq": "— (only MD5 for this file)",
        "undecodable": "This photo could not be read here; only its MD5 will be sent.",
        "preview_title": "2. What will be sent",
        "preview_note": (
            "This is everything that leaves your device if you press send: no pictures, "
            "no file names, no name or contact details."
        ),
        "case_title": "3. Your case number",
        "case_label": "Case number (optional)",
        "case_note": (
            "Leave this empty and we will make one for you. If you already have a case "
            "number from this page, enter it to add more fingerprints to the same case."
        ),
        "send": "Send fingerprints",
        "sending": "Sending…",
        "sent_title": "Your fingerprints were received",
        "sent_keep": (
            "Write this case number down and keep it somewhere safe. It is the only way "
            "to check or withdraw your case; we do not know who you are, so we cannot "
            "send it to you or recover it."
        ),
        "sent_counts": "{added} added, {already} already in your case, {refused} not added.",
        "refused_allow": (
            "not added: it matches a widely shared picture that is known to be harmless"
        ),
        "low_quality": (
            "This photo is too plain (for example mostly one colour) for its PDQ fingerprint "
            "to be recognised safely, so only its MD5 fingerprint will be sent."
        ),
        "withdraw_title": "Check or withdraw a case",
        "withdraw_note": (
            "Withdrawing removes every fingerprint of the case from the list. Services "
            "that take part are told through their normal updates. This cannot be undone; "
            "you can always start a new case."
        ),
        "withdraw_label": "Case number",
        "check": "Check case",
        "withdraw": "Withdraw every fingerprint",
        "withdraw_confirm": "Withdraw every fingerprint of this case? This cannot be undone.",
        "status_active": "Active: {items} fingerprinted files on the list.",
        "status_withdrawn": "Withdrawn: no fingerprints of this case are on the list.",
        "withdrawn_now": "Withdrawn. {count} files' fingerprints were removed.",
        "error": "Something went wrong: {message}",
        "error_offline": "The page could not reach the server. Nothing was sent. Please try again.",
        "language": "Language",
    },
    "es": {
        "title": "Protege tus imágenes: envía huellas, no fotos",
        "intro": (
            "Si se han compartido imágenes o vídeos íntimos tuyos, o temes que pase, esta "
            "página puede ayudar a frenar su difusión en los servicios que comparan lo que "
            "se sube con esta lista. Tú decides: no se envía nada hasta que pulses el botón "
            "de enviar, y puedes parar cuando quieras."
        ),
        "how_title": "Cómo funciona",
        "how_1": "Elige las fotos o vídeos en este dispositivo.",
        "how_2": (
            "Esta página crea una huella digital de cada uno, aquí, en tu dispositivo. Una "
            "huella es un código corto; nadie puede convertirla de nuevo en la imagen."
        ),
        "how_3": (
            "Ves exactamente lo que se enviaría: solo las huellas. Tus fotos y vídeos se "
            "quedan en tu dispositivo y nadie los mira."
        ),
        "how_4": (
            "Recibes un número de caso. Con él puedes consultar tu caso o retirar todas "
            "las huellas más adelante."
        ),
        "limits_title": "Qué puede hacer y qué no",
        "limit_exact": (
            "Los servicios que participan comparan lo que se sube con las huellas. Una "
            "persona de ese servicio revisa cada coincidencia antes de hacer nada; esta "
            "lista nunca borra nada de forma automática."
        ),
        "limit_edits": (
            "Se encuentran mejor las copias exactas. Una imagen recortada, con filtros o "
            "muy editada puede no coincidir; también puedes añadir esas versiones."
        ),
        "limit_private": (
            "No llega a mensajes privados o cifrados de extremo a extremo, ni a servicios "
            "que no participan. Si algo ya está publicado, sigue valiendo la pena "
            "denunciarlo en ese servicio."
        ),
        "limit_post": "Si más adelante publicas tú estas imágenes, también pueden ser marcadas.",
        "limit_own": (
            "Usa las copias que ya tienes en este dispositivo. Por favor, no descargues, "
            "guardes ni reenvíes imágenes para usar esta página, y no la pruebes con "
            "imágenes de prueba: todo lo que envías entra en la lista. No hace falta dar tu "
            "nombre ni datos de contacto."
        ),
        "help_title": "Otra ayuda",
        "help_minor": (
            "Si tenías menos de 18 años en las imágenes, Take It Down del NCMEC "
            "(takeitdown.ncmec.org) funciona de la misma manera."
        ),
        "help_adult": (
            "Si tenías 18 años o más, StopNCII.org funciona de la misma manera y llega a "
            "muchas plataformas grandes."
        ),
        "help_threat": (
            "Si alguien te amenaza, no tienes que afrontarlo en soledad: un servicio de "
            "apoyo local o la policía pueden ayudarte. Guarda los mensajes."
        ),
        "choose_title": "1. Elige fotos o vídeos",
        "choose_label": "Fotos o vídeos de este dispositivo",
        "choose_note": "Solo los lee esta página, en este dispositivo. No se sube nada.",
        "hashing": "Creando huellas…",
        "table_file": "Archivo (se queda en tu dispositivo)",
        "table_kind": "Tipo",
        "table_md5": "Huella MD5",
        "table_pdq": "Huella PDQ (para fotos)",
        "table_send": "Enviar",
        "kind_image": "foto",
        "kind_video": "vídeo",
        "kind_other": "archivo",
        "no_pdq": "— (solo MD5 para este archivo)",
        "undecodable": "Esta foto no se pudo leer aquí; solo se enviará su MD5.",
        "preview_title": "2. Lo que se enviará",
        "preview_note": (
            "Esto es todo lo que sale de tu dispositivo si pulsas enviar: ni imágenes, ni "
            "nombres de archivo, ni tu nombre o datos de contacto."
        ),
        "case_title": "3. Tu número de caso",
        "case_label": "Número de caso (opcional)",
        "case_note": (
            "Déjalo vacío y crearemos uno para ti. Si ya tienes un número de caso de esta "
            "página, escríbelo para añadir más huellas al mismo caso."
        ),
        "send": "Enviar huellas",
        "sending": "Enviando…",
        "sent_title": "Hemos recibido tus huellas",
        "sent_keep": (
            "Apunta este número de caso y guárdalo en un lugar seguro. Es la única forma de "
            "consultar o retirar tu caso; no sabemos quién eres, así que no podemos "
            "enviártelo ni recuperarlo."
        ),
        "sent_counts": "{added} añadidas, {already} ya estaban en tu caso, {refused} no añadidas.",
        "refused_allow": (
            "no añadida: coincide con una imagen muy difundida que se sabe que es inofensiva"
        ),
        "low_quality": (
            "Esta foto es demasiado uniforme (por ejemplo, casi de un solo color) para "
            "reconocer su huella PDQ con seguridad, así que solo se enviará su huella MD5."
        ),
        "withdraw_title": "Consultar o retirar un caso",
        "withdraw_note": (
            "Al retirar un caso se quitan todas sus huellas de la lista. Los servicios que "
            "participan lo reciben con sus actualizaciones habituales. No se puede "
            "deshacer; siempre puedes empezar un caso nuevo."
        ),
        "withdraw_label": "Número de caso",
        "check": "Consultar caso",
        "withdraw": "Retirar todas las huellas",
        "withdraw_confirm": "¿Retirar todas las huellas de este caso? No se puede deshacer.",
        "status_active": "Activo: {items} archivos con huella en la lista.",
        "status_withdrawn": "Retirado: ninguna huella de este caso está en la lista.",
        "withdrawn_now": "Retirado. Se quitaron las huellas de {count} archivos.",
        "error": "Algo salió mal: {message}",
        "error_offline": (
            "La página no pudo conectar con el servidor. No se envió nada. Inténtalo de nuevo."
        ),
        "language": "Idioma",
    },
}


def strings_for(lang: str | None) -> tuple[str, dict[str, str]]:
    """The language to use for `lang` (falling back to English) and its strings."""
    code = (lang or "").lower()[:2]
    if code not in STRINGS:
        code = DEFAULT_LANGUAGE
    return code, STRINGS[code]
