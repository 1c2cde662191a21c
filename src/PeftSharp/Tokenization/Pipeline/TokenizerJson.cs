using System.Text.Json;

namespace PeftSharp.Tokenization.Pipeline;

/// <summary>The components of one tokenizer.json, in the order tokenizers runs them.</summary>
internal sealed record TokenizerPipeline(
    AddedVocabulary Added,
    INormalizer? Normalizer,
    IPreTokenizer? PreTokenizer,
    ITokenizerModel Model,
    IPostProcessor? PostProcessor,
    IDecoder? Decoder);

/// <summary>Reads a Hugging Face tokenizer.json (the <c>tokenizers</c> serialization, version 1.0).</summary>
internal static class TokenizerJson
{
    private static readonly string[] s_models = ["BPE", "WordPiece", "WordLevel"];

    public static TokenizerPipeline Load(string path, IEnumerable<AddedToken> extraAddedTokens)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException($"{path}: file not found");
        }
        using var doc = TokenizerSideFiles.Parse(path);
        var root = new JsonSection(path, "tokenizer", doc.RootElement);
        if (doc.RootElement.ValueKind != JsonValueKind.Object || !root.Has("model"))
        {
            throw new ConfigException($"{path}: not a Hugging Face tokenizer.json (no \"model\" object)");
        }
        var model = CreateModel(root.Child("model"));
        var normalizer = Normalizers.Create(root.Child("normalizer"));
        var preTokenizer = PreTokenizers.Create(root.Child("pre_tokenizer"));
        var postProcessor = PostProcessors.Create(root.Child("post_processor"));
        var decoder = Decoders.Create(root.Child("decoder"));
        var added = ReadAddedTokens(root).ToList();
        foreach (var extra in extraAddedTokens)
        {
            if (added.All(t => t.Id != extra.Id))
            {
                added.Add(extra);
            }
        }
        return new TokenizerPipeline(new AddedVocabulary(added, normalizer), normalizer, preTokenizer, model, postProcessor, decoder);
    }

    private static ITokenizerModel CreateModel(JsonSection json)
    {
        // Old files may omit the model type; tokenizers then tries each model in turn.
        string type = json.Has("type") ? json.Type : json.Has("merges") ? "BPE" : json.Has("max_input_chars_per_word") ? "WordPiece" : "";
        return type switch
        {
            "BPE" => BpeModel.Create(json),
            "WordPiece" => WordPieceModel.Create(json),
            "WordLevel" => WordLevelModel.Create(json),
            _ => throw json.Error($"model type '{type}' is not supported (supported: {string.Join(", ", s_models)})"),
        };
    }

    private static IEnumerable<AddedToken> ReadAddedTokens(JsonSection root)
    {
        if (!root.Has("added_tokens"))
        {
            yield break;
        }
        foreach (var t in root.Items("added_tokens"))
        {
            yield return new AddedToken(t.Int("id"), t.String("content"), t.Bool("special", false), t.Bool("single_word", false),
                t.Bool("lstrip", false), t.Bool("rstrip", false), t.Bool("normalized", true));
        }
    }
}
