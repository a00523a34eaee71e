"""The web survey page's own words, in Russian and English (the questions come from the
flow)."""

from __future__ import annotations

LANGUAGES = ("ru", "en")

TEXTS: dict[str, dict[str, str]] = {
    "ru": {
        "title": "Оценка обслуживания",
        "question_of": "Вопрос {number} из {total}",
        "low_rating": "плохо",
        "high_rating": "отлично",
        "low_nps": "точно нет",
        "high_nps": "обязательно",
        "skip": "Пропустить вопрос",
        "confirm_title": "Ваша оценка: {score}",
        "confirm_button": "Отправить оценку {score}",
        "confirm_hint": (
            "Оценка отправляется автоматически. Если этого не произошло, нажмите кнопку."
        ),
        "thanks_title": "Спасибо за ваши оценки!",
        "thanks_locked": "Ваши ответы учтены. Изменить их уже нельзя.",
        "comment_label": "Хотите что-нибудь добавить? Напишите комментарий:",
        "comment_button": "Отправить комментарий",
        "comment_saved": "Спасибо, ваш комментарий получен.",
        "change": "Изменить ответы",
        "closed_title": "Опрос завершён",
        "closed_text": "Срок действия этой ссылки истёк или опрос уже закрыт. Спасибо!",
        "unknown_title": "Ссылка не найдена",
        "unknown_text": "Проверьте ссылку: возможно, она скопирована не полностью.",
        "bad_answer": "Выберите один из вариантов ниже.",
        "other_language": "English",
        "unsubscribe_title": "Отказ от опросов",
        "unsubscribe_text": "Больше не присылать мне опросы — ни по почте, ни по SMS, ни звонком.",
        "unsubscribe_button": "Отказаться от опросов",
        "unsubscribed": "Готово: опросов больше не будет.",
    },
    "en": {
        "title": "Rate our service",
        "question_of": "Question {number} of {total}",
        "low_rating": "poor",
        "high_rating": "excellent",
        "low_nps": "not at all",
        "high_nps": "certainly",
        "skip": "Skip this question",
        "confirm_title": "Your rating: {score}",
        "confirm_button": "Send rating {score}",
        "confirm_hint": "Your rating is sent automatically. If it was not, press the button.",
        "thanks_title": "Thank you for your answers!",
        "thanks_locked": "Your answers are recorded and can no longer be changed.",
        "comment_label": "Anything to add? Leave a comment:",
        "comment_button": "Send comment",
        "comment_saved": "Thank you, we have your comment.",
        "change": "Change my answers",
        "closed_title": "The survey is closed",
        "closed_text": "This link has expired or the survey is already closed. Thank you!",
        "unknown_title": "Link not found",
        "unknown_text": "Please check the link: it may have been copied only in part.",
        "bad_answer": "Please choose one of the options below.",
        "other_language": "Русский",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_text": "Send me no more surveys: no email, no SMS, no calls.",
        "unsubscribe_button": "Unsubscribe from surveys",
        "unsubscribed": "Done: you will get no more surveys.",
    },
}
