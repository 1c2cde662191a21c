using System.Text.Json.Nodes;
using PeftSharp.Federated;
using PeftSharp.IO;
using PeftSharp.IO.Safetensors;
using PeftSharp.Models;
using PeftSharp.Tests.Models;
using PeftSharp.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace PeftSharp.Tests.Federated;

/// <summary>
/// <c>--save-global</c>: the final global model of a simulation as one PEFT LoRA adapter. The truth is the simulated
/// global model itself (its logits, and its merged weights minus the original base's), never the saving code.
/// Runs on the llama-seqcls fixture with a hand-written word-level tokenizer.
/// </summary>
[Collection(PeftSharp.Tests.Training.TorchRngCollection.Name)]
public sealed class GlobalAdapterTests : IDisposable
{
    private static readonly string[] s_good = ["good", "great", "fine", "nice", "happy", "lovely"];
    private static readonly string[] s_bad = ["bad", "awful", "poor", "sad", "ugly", "boring"];
    private static readonly string[] s_filler = ["the", "movie", "film", "was", "is", "very", "really", "quite"];

    private readonly string _tmp = Directory.CreateTempSubdirectory("peftsharp-fedglobal-").FullName;
    private readonly string _model;
    private readonly string _train;
    private readonly string _validation;

    public GlobalAdapterTests()
    {
        _model = Path.Combine(_tmp, "model");
        Directory.CreateDirectory(_model);
        foreach (var file in new[] { "config.json", "model.safetensors" })
        {
            File.Copy(SharedPaths.Fixture("bases", "llama-seqcls", file), Path.Combine(_model, file));
        }
        // pad_token_id 0 in the fixture config: the classifier pools at the last token before the first <pad>.
        var words = new[] { "<pad>", "[UNK]" }.Concat(s_filler).Concat(s_good).Concat(s_bad).ToList();
        var vocab = new JsonObject(words.Select((w, i) => KeyValuePair.Create(w, (JsonNode?)i)));
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(new JsonObject { ["id"] = 0, ["content"] = "<pad>", ["special"] = true, ["normalized"] = false }),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "WhitespaceSplit" },
            ["post_processor"] = null,
            ["decoder"] = null,
            ["model"] = new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "[UNK]" },
        };
        File.WriteAllText(Path.Combine(_model, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(_model, "tokenizer_config.json"), """{"pad_token": "<pad>"}""");
        _train = WriteData("train.jsonl", 40, 1);
        _validation = WriteData("validation.jsonl", 12, 2);
    }

    public void Dispose() => Directory.Delete(_tmp, true);

    // Sentences of filler words with one sentiment word; the label says which list it came from.
    private string WriteData(string name, int count, int seed)
    {
        var rng = new Random(seed);
        var lines = Enumerable.Range(0, count).Select(i =>
        {
            var label = i % 2;
            var sentiment = (label == 1 ? s_good : s_bad)[rng.Next(6)];
            var text = string.Join(' ', Enumerable.Range(0, 3).Select(_ => s_filler[rng.Next(s_filler.Length)]).Append(sentiment));
            return new JsonObject { ["text"] = text, ["label"] = label }.ToJsonString();
        });
        var path = Path.Combine(_tmp, name);
        File.WriteAllLines(path, lines);
        return path;
    }

    private FederatedOptions Options(int[] ranks, AggregationKind[] kinds, string saveGlobal, int? globalRank = null) => new()
    {
        Model = _model,
        Data = _train,
        Validation = _validation,
        Clients = 2,
        Rounds = 2,
        Ranks = ranks,
        Split = "iid",
        Aggregations = kinds,
        StepsPerClient = 3,
        BatchSize = 4,
        LearningRate = 5e-3,
        MaxLength = 16,
        Seeds = [3],
        Output = Path.Combine(_tmp, "run"),
        SaveGlobal = saveGlobal,
        GlobalRank = globalRank,
    };

    private static (Tensor Ids, Tensor Mask) Inputs()
    {
        var (ids, mask, _) = ModelFixtures.Inputs(SharedPaths.Fixture("inputs.json"));
        return (ids, mask);
    }

    private Tensor LogitsWithAdapter(string? adapter)
    {
        var (ids, mask) = Inputs();
        using var model = AutoModel.FromPretrained(_model);
        if (adapter is not null)
        {
            PeftAdapterFiles.FromPretrained(model, adapter);
        }
        model.eval();
        using var _ = torch.no_grad();
        return model.Forward(ids, mask).Logits.detach().clone();
    }

    private static JsonObject Config(string adapter) => (JsonObject)JsonNode.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json")))!;

    private static long[] ShapeOf(string adapter, string key)
    {
        using var file = SafetensorsFile.Open(Path.Combine(adapter, "adapter_model.safetensors"));
        return file[key].Shape.ToArray();
    }

    private const string QProj0A = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";

    private void AssertSavedAdapterReproducesTheFinalModel(FederatedOptions options, Dictionary<string, int> expectedRank)
    {
        var (ids, mask) = Inputs();
        var finalLogits = new Dictionary<string, Tensor>();
        var result = FederatedSimulation.Run(options, onFinalModel: g =>
        {
            // FedIT's global model is the base plus its unmerged adapter: merge that (plain s·B·A into W) for the truth.
            g.UnmergedAdapter?.MergeInto(g.Model);
            finalLogits[g.Aggregation.Name()] = g.Model.Forward(ids, mask).Logits.detach().clone();
        });
        using var baseLogits = LogitsWithAdapter(null);
        Assert.Equal(expectedRank.Keys.Order(), result.GlobalAdapters.Select(g => g.Aggregation).Order());
        foreach (var saved in result.GlobalAdapters)
        {
            var r = expectedRank[saved.Aggregation];
            Assert.Equal(r, Config(saved.Directory)["r"]!.GetValue<int>());
            Assert.Equal(r, Config(saved.Directory)["lora_alpha"]!.GetValue<double>());
            Assert.Equal(new long[] { r, 64 }, ShapeOf(saved.Directory, QProj0A));
            Assert.Equal(new long[] { 2, 64 }, ShapeOf(saved.Directory, "base_model.model.score.weight"));
            using var loaded = LogitsWithAdapter(saved.Directory);
            var expected = finalLogits[saved.Aggregation];
            Assert.True(Weights.MaxAbsDiff(expected, baseLogits) > 1e-3, $"{saved.Aggregation}: training must move the global model for the test to mean anything");
            Assert.True(Weights.MaxAbsDiff(loaded, expected) <= 1e-5, $"{saved.Aggregation}: differs by {Weights.MaxAbsDiff(loaded, expected)}");
        }
    }

    [Fact]
    public void Stacked_and_zero_padded_global_adapters_on_the_original_base_give_the_final_global_logits_within_1e5()
    {
        var dir = Path.Combine(_tmp, "global");
        // Two rounds merged: stack has rank (2 + 4)·2, zeropad 4·2; several runs go to <kind>-seed<seed>.
        AssertSavedAdapterReproducesTheFinalModel(Options([2, 4], [AggregationKind.Stack, AggregationKind.ZeroPad], dir),
            new() { ["stack"] = 12, ["zeropad"] = 8 });
        Assert.True(File.Exists(Path.Combine(dir, "stack-seed3", "adapter_config.json")));
        Assert.True(File.Exists(Path.Combine(dir, "zeropad-seed3", "adapter_model.safetensors")));
    }

    [Fact]
    public void FedIT_global_adapter_on_the_original_base_gives_the_final_global_logits_within_1e5()
    {
        var dir = Path.Combine(_tmp, "avg");
        // FedIT never merges: the last global adapter (the clients' rank) is the whole update; one run writes into dir.
        AssertSavedAdapterReproducesTheFinalModel(Options([3], [AggregationKind.Average], dir), new() { ["avg"] = 3 });
        Assert.True(File.Exists(Path.Combine(dir, "adapter_config.json")));
    }

    [Fact]
    public void Global_rank_k_is_the_files_rank_and_its_error_is_the_svd_tail_of_the_true_update()
    {
        const int K = 3;
        var dir = Path.Combine(_tmp, "k");
        var finalWeights = new Dictionary<string, Tensor>();
        var result = FederatedSimulation.Run(Options([2, 4], [AggregationKind.Stack], dir, K), onFinalModel: g =>
        {
            foreach (var (name, p) in g.Model.named_parameters().Where(p => p.name.EndsWith("_proj.weight", StringComparison.Ordinal)))
            {
                finalWeights[name] = p.detach().to(ScalarType.Float64).clone();
            }
        });
        var saved = Assert.Single(result.GlobalAdapters);
        Assert.Equal((K, 12), (saved.Rank, saved.SourceRank));
        var config = Config(dir);
        Assert.Equal(K, config["r"]!.GetValue<int>());
        Assert.Empty(config["rank_pattern"]!.AsObject());
        var scale = config["lora_alpha"]!.GetValue<double>() / K;

        using var original = AutoModel.FromPretrained(_model);
        var before = original.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        using var file = SafetensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        double tailSquares = 0;
        var modules = 0;
        foreach (var (name, w) in finalWeights)
        {
            // The simulation merged every round into the base: its true total update is W_final − W_original.
            var trueDelta = w - before[name].to(ScalarType.Float64);
            var singular = torch.linalg.svdvals(trueDelta).data<double>().ToArray();
            if (singular[0] < 1e-6)
            {
                continue;
            }
            var module = name[..^".weight".Length];
            Assert.Equal(new long[] { K, trueDelta.shape[1] }, file[$"base_model.model.{module}.lora_A.weight"].Shape);
            var a = file.Read($"base_model.model.{module}.lora_A.weight", ScalarType.Float64);
            var b = file.Read($"base_model.model.{module}.lora_B.weight", ScalarType.Float64);
            var error = (trueDelta - b.matmul(a) * scale).norm().item<double>();
            var tail = Math.Sqrt(singular.Skip(K).Sum(s => s * s));
            Assert.True(tail > 1e-3, $"{module}: the update must have rank > {K} for the test to mean anything (tail {tail})");
            Assert.True(Math.Abs(error - tail) <= 1e-5, $"{module}: ‖ΔW − ΔW_k‖_F = {error}, SVD tail bound {tail}");
            tailSquares += tail * tail;
            modules++;
        }
        Assert.Equal(4, modules);
        Assert.True(Math.Abs(saved.CompressionError - Math.Sqrt(tailSquares)) <= 1e-5, $"reported {saved.CompressionError}, tails {Math.Sqrt(tailSquares)}");
    }

    [Fact]
    public void Concatenated_rounds_sum_each_rounds_scaled_update_term_by_term_and_keep_the_last_dense_weights()
    {
        var g = new Generator((ulong)5);
        ClientUpdate Client(string id, int r, double scale, double head) => new(id, 10, "m",
            new Dictionary<string, ModuleFactors> { ["q"] = new(torch.randn(r, 6, float64, generator: g), torch.randn(5, r, float64, generator: g), scale) },
            new Dictionary<string, Tensor> { ["score.weight"] = torch.full(new long[] { 2, 3 }, head, dtype: float64) });
        using var c1 = Client("a", 2, 2.0, 1);
        using var c2 = Client("b", 2, 2.0, 3);
        using var c3 = Client("a", 2, 0.5, 5);
        using var c4 = Client("b", 2, 0.5, 7);
        using var round1 = FederatedAggregation.Average([c1, c2]);
        using var round2 = FederatedAggregation.Average([c3, c4]);
        using var total = GlobalAdapter.Concatenate([round1, round2]);

        var expected = round1.Modules["q"].B.matmul(round1.Modules["q"].A) * round1.Modules["q"].Scaling
            + round2.Modules["q"].B.matmul(round2.Modules["q"].A) * round2.Modules["q"].Scaling;
        Assert.Equal(2.0, round1.Modules["q"].Scaling);
        Assert.Equal((4L, 1.0), (total.Modules["q"].Rank, total.Modules["q"].Scaling));
        Assert.True((total.Delta("q") - expected).abs().max().item<double>() < 1e-12);
        Assert.Equal(6.0, total.DenseWeights["score.weight"][0, 0].item<double>());

        using var other = FederatedAggregation.Average([
            new ClientUpdate("a", 1, "m", new Dictionary<string, ModuleFactors> { ["v"] = new(torch.zeros(2, 6, float64), torch.zeros(5, 2, float64), 1) }),
        ]);
        var e = Assert.Throws<ModelMismatchException>(() => GlobalAdapter.Concatenate([round1, other]));
        Assert.Contains("'q'", e.Message);
        Assert.Contains("round 2", e.Message);
    }

    [Fact]
    public void Cli_save_global_writes_the_adapter_and_rejects_a_global_rank_it_cannot_give()
    {
        var dir = Path.Combine(_tmp, "cli-global");
        string[] common = ["federated", "simulate", "--model", _model, "--data", _train, "--validation", _validation, "--clients", "2", "--rounds", "1",
            "--ranks", "2", "--split", "iid", "--aggregation", "stack", "--steps", "2", "--batch-size", "4", "--max-length", "16", "--output", Path.Combine(_tmp, "cli-run")];
        var ok = CliRunner.Run([.. common, "--save-global", dir, "--global-rank", "1"]);
        Assert.True(ok.ExitCode == 0, ok.Stderr);
        Assert.Contains($"wrote the stack global adapter (seed 42, rank 1) to {dir}", ok.Stdout);
        Assert.Equal(1, Config(dir)["r"]!.GetValue<int>());
        Assert.Equal("LORA", Config(dir)["peft_type"]!.GetValue<string>());

        var tooLarge = CliRunner.Run([.. common, "--save-global", dir, "--global-rank", "5"]);
        Assert.Equal(1, tooLarge.ExitCode);
        Assert.Contains("--global-rank 5 exceeds the rank 4 of the stack global adapter", tooLarge.Stderr);
        var noFolder = CliRunner.Run([.. common, "--global-rank", "1"]);
        Assert.Equal(1, noFolder.ExitCode);
        Assert.Contains("give --save-global DIR too", noFolder.Stderr);
    }
}
