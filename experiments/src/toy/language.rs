//! The toy language's vocabulary and tasks: topics with eight words each, count words
//! two..eight, prompt words and filler words (used only by off-policy responses).

/// Topics and their words. Topic names and words are all distinct.
pub const TOPICS: &[(&str, &[&str])] = &[
    (
        "animals",
        &["cat", "dog", "fox", "owl", "bear", "wolf", "deer", "frog"],
    ),
    (
        "colors",
        &[
            "red", "blue", "green", "pink", "gold", "gray", "black", "white",
        ],
    ),
    (
        "food",
        &[
            "bread", "rice", "soup", "cake", "pear", "plum", "corn", "bean",
        ],
    ),
    (
        "tools",
        &[
            "saw", "drill", "nail", "rope", "axe", "hoe", "chisel", "wrench",
        ],
    ),
    (
        "weather",
        &[
            "rain", "snow", "wind", "fog", "hail", "sun", "storm", "cloud",
        ],
    ),
    (
        "music",
        &[
            "drum", "harp", "flute", "song", "tune", "bass", "horn", "bell",
        ],
    ),
];

/// Count words; `COUNT_WORDS[i]` asks for `i + MIN_COUNT` words.
pub const COUNT_WORDS: &[&str] = &["two", "three", "four", "five", "six", "seven", "eight"];

/// The count that `COUNT_WORDS[0]` stands for.
pub const MIN_COUNT: usize = 2;

/// Words that only appear in prompts.
pub const PROMPT_WORDS: &[&str] = &[
    "write", "list", "give", "me", "name", "please", "words", "about",
];

/// Number of phrasings of a prompt ([`ToyTask::prompt`]'s variants).
pub const PROMPT_VARIANTS: usize = 4;

/// Words off-policy responses mix in; they are on no topic.
pub const FILLER_WORDS: &[&str] = &["and", "the", "also", "then", "so", "very"];

/// What a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToyTask {
    /// Index into [`TOPICS`].
    pub topic: usize,
    /// Number of words requested.
    pub count: usize,
}

impl ToyTask {
    /// The topic's name.
    pub fn topic_name(&self) -> &'static str {
        TOPICS[self.topic % TOPICS.len()].0
    }

    /// The topic's words.
    pub fn topic_words(&self) -> &'static [&'static str] {
        TOPICS[self.topic % TOPICS.len()].1
    }

    /// The count word of `count` (e.g. `five`), `None` outside two..eight.
    pub fn count_word(&self) -> Option<&'static str> {
        self.count
            .checked_sub(MIN_COUNT)
            .and_then(|i| COUNT_WORDS.get(i).copied())
    }

    /// The task of `prompt`: its first count word and first topic name (`None` when
    /// either is missing).
    pub fn parse(prompt: &str) -> Option<Self> {
        let words: Vec<&str> = prompt.split_whitespace().collect();
        let count = words
            .iter()
            .find_map(|w| COUNT_WORDS.iter().position(|c| c == w))?
            + MIN_COUNT;
        let topic = words
            .iter()
            .find_map(|w| TOPICS.iter().position(|(name, _)| name == w))?;
        Some(Self { topic, count })
    }

    /// Renders a prompt for this task with template `variant` (any number; taken
    /// modulo the number of templates). `None` when `count` has no count word.
    pub fn prompt(&self, variant: usize) -> Option<String> {
        let (n, t) = (self.count_word()?, self.topic_name());
        Some(match variant % PROMPT_VARIANTS {
            0 => format!("write {n} words about {t}"),
            1 => format!("list {n} {t} words"),
            2 => format!("please name {n} words about {t}"),
            _ => format!("give me {n} {t} words"),
        })
    }
}
