using System.CommandLine;

namespace PeftSharp.Cli.Commands;

/// <summary>The one place where exceptions become the CLI's one-line error and exit code.</summary>
internal static class CliErrors
{
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print stack traces on errors.", Recursive = true };

    /// <summary>Runs a command body: 0 on success, 1 on bad input (PeftException and I/O errors), 2 on an internal error.</summary>
    public static int Run(ParseResult parse, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (PeftException e)
        {
            return Fail(parse, e, 1);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Text.Json.JsonException or FormatException)
        {
            return Fail(parse, e, 1);
        }
        catch (Exception e)
        {
            return Fail(parse, e, 2, internalError: true);
        }
    }

    private static int Fail(ParseResult parse, Exception e, int code, bool internalError = false)
    {
        var message = e.Message.ReplaceLineEndings(" ");
        Console.Error.WriteLine(internalError ? $"error: internal error ({e.GetType().Name}): {message}" : $"error: {message}");
        if (parse.GetValue(Verbose))
        {
            Console.Error.WriteLine(e.ToString());
        }
        return code;
    }
}
