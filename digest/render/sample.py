"""A realistic sample issue (20 items in the style of the seed's news page).

Used by the render tests, the screenshot test and benchmarks that need "a realistic digest".
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from digest.render.language import month_heading, resolve_locale
from digest.render.view import GroupView, IssueView, ItemView

# (title, published, summary): the seed's news and more of the same kind.
NEWS: tuple[tuple[str, datetime | None, str], ...] = (
    ("Jeun'ess in numbers retrospective 2023", datetime(2024, 2, 21, 9), ""),
    (
        "Four Modules on the SSE are now available in Portuguese and Russian",
        datetime(2024, 2, 12, 14),
        "In 2023, ITCILO Turin developed two modules for an online open access awareness-raising "
        "package on social and solidarity economy (SSE) for the UNTFSSE. With financial support "
        "provided to the ILO by the Government of Luxembourg, these modules were made available "
        "in English, French, and Spanish.",
    ),
    (
        "Cooperatives in the care economy: a new mapping of 30 countries",
        datetime(2024, 2, 8, 11),
        "A new working paper maps how cooperatives provide childcare, elder care and care for "
        "persons with disabilities, and what public policies helped them grow.",
    ),
    (
        "Call for papers: SSE and the just transition",
        datetime(2024, 2, 5, 8),
        "Researchers are invited to submit abstracts on the role of the social and solidarity "
        "economy in a just transition to environmentally sustainable economies. Deadline: "
        "31 March 2024.",
    ),
    (
        "ILO participates in the Framework Conference of the Ibero-American Network for the "
        "Promotion of the Social and Solidarity Economy (SSE)",
        datetime(2024, 1, 31, 16),
        "This network, driven by Chile, Colombia, Brazil, Guatemala, Mexico, Spain and Portugal, "
        "aims to consolidate a regional group that promotes the SSE.",
    ),
    (
        "ILO joins a regional network meeting on the social and solidarity economy in Asia and "
        "the Pacific",
        datetime(2024, 1, 31, 10),
        "The regional conference showcased the landscape of social and solidarity economy actors "
        "contributing towards the Sustainable Development Goals and strengthened the regional "
        "network on the social and solidarity economy in Asia-Pacific region.",
    ),
    (
        "COOPERATIVE IS BEAUTIFUL: The rise of cooperatives as a tool for formalising the informal "
        "sector in Senegal",
        datetime(2024, 1, 11, 12),
        "The cooperative, in the spotlight of the Senegalese economy, is becoming an essential "
        "instrument for formalising players in the informal economy.",
    ),
    (
        "Webinar recording: measuring the SSE with satellite accounts",
        datetime(2024, 1, 9, 15),
        "Statisticians from four national offices explain how satellite accounts make the size "
        "of cooperatives, mutuals and associations visible in national accounts.",
    ),
    (
        "Youth and the social economy: lessons from 12 incubators",
        datetime(2024, 1, 4, 9),
        "Young people are creating cooperatives in digital services, recycling and agriculture. "
        "A review of twelve incubators across Africa and Latin America shows what support works.",
    ),
    (
        "The ILO contributes to the Roots of Resilience Conference that took place in Kerala",
        datetime(2023, 12, 20, 10),
        "IT For Change and the Platform Cooperativism Consortium (PCC) held the ‘Roots of "
        "Resilience – Building Platform Cooperatives for Sustainable and Feminist Local "
        "Economies’ conference from 30 November to 2 December 2023 in Thiruvananthapuram, "
        "Kerala. The conference brought together 105 scholars, practitioners, and policy makers "
        "from 15 countries to reflect on new visions for a just and sustainable digital future.",
    ),
    (
        "UN Task Force on Social and Solidarity Economy (UNTFSSE) holds its 46th virtual meeting",
        datetime(2023, 12, 19, 13),
        "On 13 December 2023, the UN Inter-Agency Task Force on the Social and Solidarity Economy "
        "(UNTFSSE) organized its final meeting of the year. This was the 46th regular meeting of "
        "the Task Force since it was established in 2013.",
    ),
    (
        "ILO shares highlights on statistics of cooperatives and the social and solidarity "
        "economy from the 21st ICLS",
        datetime(2023, 12, 19, 9),
        "At the December 14, 2023 webinar on statistics concerning cooperatives and the social "
        "and solidarity economy, the ILO shared highlights from the 21st International "
        "Conference of Labour Statisticians with 80 participants.",
    ),
    (
        "ILO’s policy dialogue reveals potential to promote the social and solidarity economy in "
        "Thailand",
        datetime(2023, 12, 18, 8),
        "The ILO convened a policy dialogue on the social and solidarity economy’s contribution "
        "to decent work and sustainable development on December 15, 2023. The meeting provided "
        "an opportunity to review the workplan for the study on the Social and Solidarity "
        "Economy in Thailand.",
    ),
    (
        "Understanding the contribution of the social and solidarity economy to sustainable "
        "development in Mongolia",
        datetime(2023, 12, 14, 11),
        "On November 30, 2023 participants at the Mongolian Entrepreneurship Conference 2023 "
        "explored ways that social and solidarity economy entities in Mongolia can contribute to "
        "decent work and Sustainable Development Goals.",
    ),
    (
        "Housing cooperatives in Uruguay: fifty years of mutual aid",
        datetime(2023, 12, 12, 10),
        "Since the 1970s, mutual-aid housing cooperatives have built homes for thousands of "
        "families in Uruguay. A new case study follows three of them.",
    ),
    (
        "Training of trainers on SSE policy in Francophone Africa",
        datetime(2023, 12, 7, 9),
        "Thirty officials from eleven countries took part in a two-week course in Dakar on "
        "designing and evaluating public policies for the social and solidarity economy.",
    ),
    (
        "Financing the social and solidarity economy: a guide for local governments",
        datetime(2023, 12, 5, 14),
        "The guide reviews public procurement, guarantee funds and blended finance, with "
        "examples from Québec, Seoul and Barcelona.",
    ),
    (
        "Platform cooperatives and decent work in the gig economy",
        datetime(2023, 12, 1, 12),
        "Worker-owned platforms for delivery, cleaning and care are small but growing. Interviews "
        "with their founders show how they set fair pay and share decisions.",
    ),
    (
        "SSE entities respond to the earthquake in Morocco",
        datetime(2023, 11, 28, 10),
        "Women’s cooperatives in the Atlas mountains organised shelter and food within days. "
        "The ILO is supporting their recovery plan.",
    ),
    ("Upcoming: International Day of Cooperatives 2024", None, ""),
)


def _summary_html(text: str) -> str:
    return f"<p>{escape(text)}</p>" if text else ""


def _slug(title: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in title.lower()).split()
    return "-".join(words[:8])


def sample_issue_view(
    *,
    items: int = 20,
    language: str = "en",
    image_base: str | None = "https://www.example.org/images",
    number: int = 12,
) -> IssueView:
    """A digest of `items` news items grouped by month; every fourth one has an image."""
    chosen: list[ItemView] = []
    for index in range(items):
        title, published, summary = NEWS[index % len(NEWS)]
        if index >= len(NEWS):
            title = f"{title} ({index // len(NEWS) + 1})"
        chosen.append(
            ItemView(
                title=title,
                url=f"https://www.example.org/news/{_slug(title)}-{index}",
                summary_html=_summary_html(summary),
                summary_text=summary,
                published_at=published,
                image_url=f"{image_base}/news-{index}.svg"
                if image_base and index % 4 == 1
                else None,
                source_name="ILO News" if index % 3 else "UNTFSSE",
            )
        )
    locale, _ = resolve_locale(language)
    groups: dict[str, list[ItemView]] = {}
    for item in chosen:
        label = month_heading(item.published_at, locale) if item.published_at else "Upcoming"
        groups.setdefault(label, []).append(item)
    return IssueView(
        list_name="News on Social and Solidarity Economy",
        list_description="The ILO's monthly digest on cooperatives and the social economy.",
        number=number,
        subject="SSE news: new modules in Portuguese and Russian, and more",
        preheader="Four SSE modules in new languages, the Ibero-American network, Senegal.",
        intro=(
            "Here is what happened in the social and solidarity economy since our last issue.\n\n"
            "Forward this email to a colleague who might be interested."
        ),
        language=language,
        groups=tuple(GroupView(label, tuple(group)) for label, group in groups.items()),
        from_name="ILO Cooperatives Unit",
        footer_address="International Labour Office\n4 route des Morillons\n"
        "CH-1211 Genève 22, Switzerland",
    )
